"""What several commands share: the parser class, flag types, the flags declared once, report checks."""
import argparse
import math
import sys
from pathlib import Path
from typing import Callable

from softfold.errors import ExitCode, UserError
from softfold.export.config import DEFAULT_OFFSET_BITS, Algorithm, QuantConfig, Recipe, Target
from softfold.inputs.named_models import NAMED_MODELS, resolve_model


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


def add_model_flag(p: argparse.ArgumentParser, chat_template: bool = True) -> None:
    """--model, and --chat-template for the commands that load the model themselves."""
    p.add_argument("--model", help="base model: a Hugging Face model directory, a .gguf file, or a named model ("
                                   f"{', '.join(NAMED_MODELS)}: assembled and cached in ~/.cache/softfold on first "
                                   "use) (default: the embedded SmolLM2-135M-Instruct)")
    if chat_template:
        p.add_argument("--chat-template", metavar="FILE",
                       help="a Jinja chat template file for the model's turns, replacing its own; needed for a model "
                            "without one (a base model's GGUF), except a named model softfold ships one for "
                            "(gemma3-270m: Gemma's <start_of_turn> format)")


def add_soft_prompt_flag(p: argparse.ArgumentParser, required: bool = True, help: str = "") -> None:
    p.add_argument("--soft-prompt", required=required, metavar="DIR", action=Once,
                   help=help or "PEFT prompt-tuning adapter directory (the distillation checkpoint)")


def add_adapter_flag(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--adapter", metavar="DIR", action=Once, help=help)


def add_steering_flag(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--steering-vector", metavar="FILE", action=Once, help=help + " (one file: merge several into one)")


def model_path(args: argparse.Namespace) -> Path:
    return resolve_model(args.model)


def chat_template_path(args: argparse.Namespace) -> Path | None:
    return Path(args.chat_template) if getattr(args, "chat_template", None) else None


def check_writable_file(path: str | None, flag: str) -> None:
    """A report path the command will write at its end, checked at its start."""
    if path and not Path(path).parent.is_dir():
        raise UserError(f"{flag} {path}: directory {Path(path).parent} does not exist; create it or pick another path")
    if path and Path(path).is_dir():
        raise UserError(f"{flag} {path} is a directory: pass a file path")


def report_verdict(report, where: Path) -> int:
    """The parity gate's verdict on stdout, its failures on stderr; the exit code (0 passed, 1 failed)."""
    m = report.metrics
    return verdict(f"parity {'PASSED' if report.passed else 'FAILED'}: rel_dlogit={m['rel_dlogit']:.2e} "
                   f"top1={m['top1']:.4f} exact_match={m['exact_match']:.2f} "
                   f"engine_match={m.get('engine_match', 'n/a')}", report.failures, where / "parity.md")


def verdict(headline: str, failures: list[str], report_file: Path) -> int:
    """A gate's headline on stdout; each failure and, when failed, where the report is, on stderr; the exit code."""
    print(headline)
    for failure in failures:
        print(f"  failed: {failure}", file=sys.stderr)
    if failures:
        print(f"  report: {report_file}", file=sys.stderr)
    return 1 if failures else 0


def add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    """Target and quantization recipe flags (export, calibrate-prefix)."""
    p.add_argument("--target", default="executorch", choices=[t.value for t in Target],
                   help="executorch: model.pte for Android's LlmModule; onnx: model.onnx + genai_config.json for "
                        "onnxruntime-genai; ort: model.ort for ONNX Runtime Mobile (default: executorch)")
    p.add_argument("--recipe", default="fp32", choices=[r.value for r in Recipe],
                   help="fp32 (any target); fp16 (executorch); 8da4w, 8da8w: int8 dynamic activations x int4 "
                        "group-wise / int8 weights (executorch); int4: MatMulNBits; int8: dynamic int8; int8-static: "
                        "QDQ int8 calibrated on chat prompts (onnx, ort). The soft prompt's K/V are never quantized "
                        "(default: fp32)")
    p.add_argument("--group-size", type=int, default=32, help="int4 weight group / block size (default: 32)")
    p.add_argument("--embedding-bits", type=int, default=None, choices=[0, 4, 8],
                   help="the embedding table's bits: 4 or 8 for executorch, 4 for onnx int4, 0 keeps it fp32. "
                        "Default: 8 for 8da4w / 8da8w, 4 for onnx int4 (GatherBlockQuantized, ORT's one width), fp32 "
                        "for --target ort (its format cannot hold 4-bit tensors) and the other recipes. The table is "
                        "a large share of a small model's bundle (SmolLM2 8da4w: 0.19x of fp32 with an 8-bit table, "
                        "0.32x with an fp32 one); these are the widths the shipped safety prompt's 4-bit bundles "
                        "pass their gates with (a per-row 4-bit table on executorch failed Gemma 3 270M's gate)")
    p.add_argument("--keep-8bit", nargs="+", default=[], metavar="LAYER",
                   help="4-bit recipes: keep these layers at 8 bits, e.g. lm_head layers.3 (the ranking comes "
                        "from `softfold sensitivity`)")
    p.add_argument("--algorithm", choices=[a.value for a in Algorithm],
                   help="weight rounding: rtn (round to nearest); gptq (8da4w, 8da8w, int4: rounds each layer so its "
                        "outputs match fp32 on calibration prompts from the distillation training files, soft prompt in "
                        "context; slower); hqq (onnx int4, ORT's HQQ); grid (8da4w, int4: weights already on a 4-bit "
                        "grid, as a Q4_1 GGUF's, are kept exactly, the rest by gptq: a merged --adapter's Linears "
                        "are off the grid, so gptq rounds them). "
                        "Default: grid for 4-bit weights (8da4w, int4) with prefix-kv folding, else rtn")
    p.add_argument("--offset-bits", type=int, choices=[8, 32], default=DEFAULT_OFFSET_BITS,
                   help="executorch 8da4w with --algorithm grid: a Q4_1 weight's per-block offsets (one per 32 weights, "
                        "the part of the source grid the int4 kernels cannot hold) as fp32 (32, the default: exact) or int8 "
                        "per output channel (8: a quarter of their bytes, int8 dynamic activations like the rest of "
                        "8da4w; on SmolLM2 the same 4-bit decisions, 9 MiB smaller, ~4%% faster decode, but a ~50%% "
                        "longer export)")
    p.add_argument("--weight-bits", type=int, choices=[2, 4, 8],
                   help="override the recipe's weight bits: 4 or 8 for executorch, 2/4/8 for onnx int4 "
                        "(2 bits shows the parity gate failing)")


def export_options(args: argparse.Namespace, gate=None, **extra):
    """ExportOptions from the recipe flags (and the command's own extras)."""
    from softfold.parity.gate import GateConfig  # loads torch: only the commands that export pay for it
    from softfold.pipeline.options import ExportOptions

    quant = QuantConfig(Target(args.target), Recipe(args.recipe), args.group_size, args.weight_bits,
                        args.embedding_bits, tuple(args.keep_8bit), Algorithm(args.algorithm) if args.algorithm else None,
                        args.offset_bits)
    return ExportOptions(model=model_path(args), soft_prompt=optional_path(args.soft_prompt), out=Path(args.out),
                         quant=quant, gate=gate or GateConfig(), chat_template=chat_template_path(args),
                         adapter=optional_path(getattr(args, "adapter", None)),
                         steering_vector=optional_path(getattr(args, "steering_vector", None)), **extra)


def optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None
