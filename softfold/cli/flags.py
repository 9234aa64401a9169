"""The flags commands share, each defined once, with one meaning wherever it appears (docs/commands.md); the parser
class and the flag types. A command's default for a shared flag says itself in the help's "(default: ...)"."""
import argparse
import math
from pathlib import Path
from typing import Callable

from softfold.errors import ExitCode
from softfold.export.config import DEFAULT_OFFSET_BITS, Algorithm, QuantConfig, Recipe, Target
from softfold.inputs.named_models import DEFAULT_MODEL, MODEL_NAMES, resolve_model


class Parser(argparse.ArgumentParser):
    """Flag mistakes as one line (exit 2, BAD_INPUT), pointing to --help rather than printing the usage block."""

    def error(self, message: str):
        self.exit(ExitCode.BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or a positive integer, got {value}")
    return value


def finite_number(low: float = -math.inf, high: float = math.inf, low_open: bool = False,
                  nonzero: bool = False) -> Callable[[str], float]:
    """An argparse type for a float flag (a threshold, a weight, a rate): a finite number within [low, high] (low
    excluded with `low_open`; 0 excluded with `nonzero`). NaN would make every comparison with it false: a gate
    that cannot fail."""
    where = _range_text(low, high, low_open)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number {where}, got {text!r}") from None
        inside = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
        if not inside or (nonzero and value == 0):
            wanted = " ".join(part for part in ("a finite number", where, "other than 0" if nonzero else "") if part)
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    parse.__name__ = "number"  # argparse names the type in its own messages
    return parse


def _range_text(low: float, high: float, low_open: bool) -> str:
    if math.isinf(high):
        return "" if math.isinf(low) else f"{'>' if low_open else '>='} {low:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}]"


FRACTION = finite_number(0, 1)  # a share of prompts, 0 to 1
NONNEGATIVE = finite_number(0)
POSITIVE = finite_number(0, low_open=True)


class Once(argparse.Action):
    """A flag that takes one value: given twice, argparse's default keeps the last silently; this refuses."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            raise argparse.ArgumentError(self, "given twice: pass it once")
        setattr(namespace, self.dest, values)


def add_model(p: argparse.ArgumentParser, chat_template: bool = True) -> None:
    """--model, and --chat-template for the commands that load the model themselves."""
    p.add_argument("--model", action=Once,
                   help="base model: a Hugging Face directory, a .gguf file, or a named model "
                        f"({', '.join(MODEL_NAMES)}) (default: {DEFAULT_MODEL})")
    if chat_template:
        p.add_argument("--chat-template", metavar="FILE", action=Once,
                       help="a Jinja chat template replacing the model's own (needed when it has none)")


def add_soft_prompt(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--soft-prompt", required=required, metavar="DIR", action=Once,
                   help="a PEFT prompt-tuning directory: the distilled soft prompt")


def add_adapter(p: argparse.ArgumentParser) -> None:
    p.add_argument("--adapter", metavar="DIR", action=Once, help="a PEFT LoRA adapter directory")


def add_steering_vector(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steering-vector", metavar="FILE", action=Once,
                   help="a llama.cpp control-vector GGUF (one file: merge several into one)")


def add_out(p: argparse.ArgumentParser, default: str | None = None, positional: bool = False) -> None:
    """--out, what the command writes (its description says what kind); optimum-cli takes it positional."""
    where = "where the output goes: a new path, or this command's own previous output"
    if positional:
        p.add_argument("out", help=where)
    else:
        p.add_argument("--out", required=default is None, default=default, action=Once,
                       help=where + (f" (default: {default})" if default else ""))


def add_prompts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompts", action="append", default=[], metavar="FILE",
                   help="a prompt file (.txt, a prompt a line; .jsonl, a \"prompt\" field) added to the gate's; "
                        "repeat it for more")


def add_prompt_sets(p: argparse.ArgumentParser, harmful: tuple[list[str], str], benign: tuple[list[str], str],
                    pairs: tuple[list[str], str]) -> None:
    """--harmful, --benign, --pairs: labelled prompt files, each (its default files, what the help calls them)."""
    p.add_argument("--harmful", nargs="*", default=harmful[0], metavar="FILE",
                   help=f"harmful prompt files, where a refusal is right (default: {harmful[1]})")
    p.add_argument("--benign", nargs="*", default=benign[0], metavar="FILE",
                   help=f"benign prompt files, where an answer is right (default: {benign[1]})")
    p.add_argument("--pairs", nargs="*", default=pairs[0], metavar="FILE",
                   help=f"minimal-pair files: safe members answered, unsafe twins refused (default: {pairs[1]})")


def add_guard(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--guard", default=default,
                   help="the guard: labels (the files' own), classifier:DIR or causal-lm:DIR "
                        f"(default: {default or 'none'})")


def add_max_new_tokens(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument("--max-new-tokens", type=positive_int, default=default, metavar="N",
                   help=f"the most new tokens of each greedy reply (default: {default})")


def add_steps(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument("--steps", type=nonnegative_int, default=default, metavar="N",
                   help=f"optimizer steps (default: {default})")


def add_seed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="the random seed: the same run for the same seed (default: 0)")


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON to this file")


def add_junit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--junit", metavar="FILE", help="also write the gate as JUnit XML to this file")


def add_weight_grid(p: argparse.ArgumentParser) -> None:
    """--weight-bits and --group-size: the quantized weights' grid (the recipes', and sensitivity's simulation)."""
    p.add_argument("--weight-bits", type=int, choices=[2, 4, 8],
                   help="weight bits in place of the recipe's 4 or 8 (2: onnx int4 only) (default: the recipe's)")
    p.add_argument("--group-size", type=int, default=32, choices=[0, 16, 32, 64, 128, 256],
                   help="weights per quantization group, 0: one group per output channel (default: 32)")


def add_recipe(p: argparse.ArgumentParser) -> None:
    """The target and its quantization recipe (export, calibrate-prefix); docs/commands.md says what each does."""
    p.add_argument("--target", default="executorch", choices=[t.value for t in Target],
                   help="the runtime: executorch (.pte), onnx (onnxruntime-genai), ort (default: executorch)")
    p.add_argument("--recipe", default="fp32", choices=[r.value for r in Recipe],
                   help="fp32 anywhere; fp16, 8da4w, 8da8w for executorch; int4, int8, int8-static for onnx, ort "
                        "(default: fp32)")
    add_weight_grid(p)
    p.add_argument("--embedding-bits", type=int, default=None, choices=[0, 4, 8],
                   help="the embedding table's bits, 0: fp32 (default: 8 for 8da4w and 8da8w, 4 for onnx int4, "
                        "else 0)")
    p.add_argument("--keep-8bit", nargs="+", default=[], metavar="LAYER",
                   help="4-bit recipes: keep these layers at 8 bits, e.g. lm_head layers.3 (see `softfold "
                        "sensitivity`)")
    p.add_argument("--algorithm", choices=[a.value for a in Algorithm],
                   help="how 4- and 8-bit weights are rounded (default: grid for 4-bit prefix-kv bundles, else rtn)")
    p.add_argument("--offset-bits", type=int, choices=[8, 32], default=DEFAULT_OFFSET_BITS,
                   help=f"8da4w with --algorithm grid: the per-block offsets' bits (default: {DEFAULT_OFFSET_BITS})")


def quant_config(args: argparse.Namespace) -> QuantConfig:
    """The recipe the recipe flags ask for, validated (a bad combination is a one-line UserError)."""
    algorithm = Algorithm(args.algorithm) if args.algorithm else None
    return QuantConfig(Target(args.target), Recipe(args.recipe), args.group_size, args.weight_bits,
                       args.embedding_bits, tuple(args.keep_8bit), algorithm, args.offset_bits)


def model_path(args: argparse.Namespace) -> Path:
    return resolve_model(args.model)


def optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None
