"""softfold's Python API, the one its CLI calls: fold a soft prompt into a bundle, then verify, gate and chat with it.

    import softfold

    bundle = softfold.fold("my_prompt/", "out/smollm2-8da4w", recipe="8da4w", embedding_bits=8)
    assert bundle.manifest.parity.passed and bundle.verify() == []
    print(bundle.generate("How do I bake bread?", max_new_tokens=64).text)
    report = bundle.parity("my_prompt/")  # re-gate against the PEFT checkpoint (CI)
    assert bundle.compare("released/smollm2-8da4w").passed  # or against the bundle you shipped last

Errors a user can cause raise softfold.UserError with the one-line message the CLI prints. (The function is
`fold`, not `export`: `softfold.export` is the export stage's package.)
"""
import os
import sys
import types
import typing
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Callable

from softfold.bundle.integrity import read_manifest, verify
from softfold.bundle.manifest import Manifest
from softfold.data.shipped import DEFAULT_PROMPTS
from softfold.engines.chat import Reply, check_prompt, check_text, generate
from softfold.engines.engine import bundle_engine
from softfold.errors import UserError
from softfold.export.config import Algorithm, Folding, QuantConfig, Recipe, Target
from softfold.inputs.lora import WEIGHTS_FILE
from softfold.inputs.named_models import resolve_model
from softfold.inputs.read import Inputs, read_inputs
from softfold.parity.against import BundleParityReport, BundleThresholds, compare_bundles
from softfold.parity.gate import GateConfig, ParityReport, recipe_thresholds, run_parity
from softfold.pipeline.options import ExportOptions
from softfold.pipeline.stages import export_bundle
from softfold.reference.reference import Reference

PathArg = Path | None  # an argument taking a path: a str or os.PathLike is accepted too
Prompts = tuple[str, ...]  # a list of strings is accepted too


@dataclass(frozen=True)
class Bundle:
    """An exported bundle directory."""
    path: Path
    report: ParityReport | None = field(default=None, compare=False)  # the gate of the export that wrote it

    def __post_init__(self):
        check_types("Bundle", path=(self.path, Path))
        object.__setattr__(self, "path", Path(self.path))

    @property
    def manifest(self) -> Manifest:
        return Manifest.from_json(read_manifest(self.path))

    def verify(self) -> list[str]:
        """Problems with the bundle's files and manifest (checksums, schema, links); empty when intact."""
        return verify(self.path)

    def check_intact(self, fix: str = "re-export it") -> None:
        """A UserError naming the first problem `verify` finds, and the fix."""
        if problems := self.verify():
            raise UserError(f"bundle {self.path} is damaged ({problems[0]}): {fix}")

    def opened(self, fix: str = "re-export it") -> "Bundle":
        """What every command and method that opens a bundle does first: its checksums verified (a UserError naming
        the first problem and `fix`), then a one-line WARNING on stderr when it failed its gate at export."""
        self.check_intact(fix)
        self.warn_if_gate_failed()
        return self

    def warn_if_gate_failed(self) -> None:
        if not self.manifest.parity.passed:
            print(f"WARNING: {self.path} FAILED its parity gate at export ({self.path}/parity.md): its replies may "
                  "not match the soft prompt's behavior", file=sys.stderr)

    def check_files(self) -> None:
        """The files its engine opens are there (checked even without `verify`): else a one-line UserError."""
        manifest = read_manifest(self.path)
        needed = [manifest["model"]["file"], "tokenizer.json", "tokenizer_config.json"]
        needed += ["genai_config.json"] if manifest["backend"] == "onnx" else []
        if missing := [name for name in needed if not (self.path / name).is_file()]:
            raise UserError(f"bundle {self.path} has no {', '.join(missing)}: copy the whole bundle, or export it "
                            "again")

    def generate(self, prompt: str, max_new_tokens: int = 256, on_token: Callable[[str], None] | None = None,
                 check: bool = True) -> Reply:
        """Greedy reply through the engine a phone uses (TextLLMRunner, onnxruntime-genai), checksums first (unless
        `check` is False: the caller verified them, or chose not to)."""
        check_types("generate", prompt=(prompt, str), max_new_tokens=(max_new_tokens, int),
                    on_token=(on_token, Callable | None), check=(check, bool))
        if max_new_tokens < 1:
            raise UserError(f"generate(): max_new_tokens must be >= 1, got {max_new_tokens}")
        check_text(prompt)
        if check:
            self.opened()
        self.check_files()
        check_prompt(self.path, prompt)
        return generate(self.path, prompt, max_new_tokens, on_token)

    def parity(self, soft_prompt: str | Path | None, model: str | Path | None = None, prompts: tuple[str, ...] = (),
               chat_template: str | Path | None = None, adapter: str | Path | None = None,
               steering_vector: str | Path | None = None, check: bool = True) -> ParityReport:
        """The parity gate again, against the PyTorch reference (base model + soft prompt, + the LoRA `adapter`
        unmerged when the bundle merged one, + the control vector `steering_vector` added by hooks when the bundle
        folded one; `chat_template` as at export), with the recipe's thresholds; the bundle is not modified.
        Checksums first, unless `check` is False (the caller opened it)."""
        check_types("parity", soft_prompt=(soft_prompt, PathArg), model=(model, PathArg), prompts=(prompts, Prompts),
                    chat_template=(chat_template, PathArg), adapter=(adapter, PathArg),
                    steering_vector=(steering_vector, PathArg), check=(check, bool))
        if check:
            self.opened()
        if soft_prompt is None and adapter is None and steering_vector is None:
            raise UserError("parity against the reference needs the bundle's soft prompt, LoRA adapter and/or "
                            "steering vectors")
        return self.parity_with(read_inputs(resolve_model(model), chat_template, soft_prompt, adapter, steering_vector),
                                prompts)

    def parity_with(self, inputs: Inputs, prompts: tuple[str, ...] = ()) -> ParityReport:
        """`parity` against the reference of inputs already read (softfold.inputs.read.read_inputs)."""
        manifest = read_manifest(self.path)
        virtual_ids = manifest.get("soft_prompt", {}).get("virtual_token_ids", [])
        user_context = manifest["model"]["context_length"] - len(virtual_ids)
        reference = Reference(inputs.model.load(), inputs.soft_prompt, inputs.adapter, inputs.steering)
        return run_parity(reference, bundle_engine(self.path, manifest),
                          list(DEFAULT_PROMPTS) + list(prompts), manifest["recipe"], user_context,
                          recipe_thresholds(Recipe(manifest["recipe"])))

    def mismatched(self, inputs: Inputs) -> list[str]:
        """Where `inputs` are not the ones this bundle was exported with (the gate then fails), or one it folded is
        missing from them."""
        manifest, notes = self.manifest, []
        exported = manifest.soft_prompt.sha256 if manifest.soft_prompt else None
        if inputs.soft_prompt and inputs.soft_prompt.sha256 != exported:
            notes.append(f"{inputs.soft_prompt.path} is not the soft prompt this bundle was exported with (sha256 "
                         "differs)")
        merged = {f["path"]: f["sha256"] for f in manifest.adapter.files} if manifest.adapter else {}
        if inputs.adapter and inputs.adapter.sha256[WEIGHTS_FILE] != merged.get(WEIGHTS_FILE):
            notes.append(f"{inputs.adapter.path} is not the LoRA this bundle merged (sha256 differs)")
        if merged and not inputs.adapter:
            notes.append(f"this bundle merged the LoRA {manifest.adapter.source}: pass it as --adapter")
        folded = manifest.steering.sha256 if manifest.steering else None
        if inputs.steering and inputs.steering.sha256 != folded:
            notes.append(f"{inputs.steering.path} is not the control vector this bundle folded (sha256 differs)")
        if folded and not inputs.steering:
            notes.append(f"this bundle folded the steering vectors {manifest.steering.source}: pass them as "
                         "--steering-vector")
        return notes

    def compare(self, released: "Bundle | str | Path", prompts: tuple[str, ...] = (), max_new_tokens: int = 32,
                thresholds: BundleThresholds = BundleThresholds(), check: bool = True) -> BundleParityReport:
        """This bundle gated against a released one (same base model), both through their phone engines, on the
        default prompts plus `prompts`: refusal-decision agreement and KL over the reply positions. Both bundles'
        checksums first, unless `check` is False (the caller opened them)."""
        check_types("compare", released=(released, Bundle | Path), prompts=(prompts, Prompts),
                    max_new_tokens=(max_new_tokens, int), thresholds=(thresholds, BundleThresholds),
                    check=(check, bool))
        if max_new_tokens < 1:
            raise UserError(f"compare(): max_new_tokens must be >= 1, got {max_new_tokens}")
        released = released if isinstance(released, Bundle) else Bundle(Path(released))
        for bundle in (self, released) if check else ():
            bundle.opened()
        return compare_bundles(self.path, released.path, list(DEFAULT_PROMPTS) + list(prompts), max_new_tokens,
                               thresholds)


def fold(soft_prompt: str | Path | None, out: str | Path, *, model: str | Path | None = None,
         target: str = "executorch", recipe: str = "fp32", folding: str = "prefix-kv", prompts: tuple[str, ...] = (),
         **options) -> Bundle:
    """Fold the soft prompt into a bundle at `out` and gate it (softfold export). The bundle is written whether or
    not the gate passes: see `bundle.manifest.parity.passed` and its parity.md. `options` are QuantConfig fields
    (group_size, weight_bits, embedding_bits, keep_8bit, algorithm) and ExportOptions ones (max_context, prefix_kv,
    force, trust_base_model, chat_template, adapter: a PEFT LoRA directory merged first, steering_vector: a llama.cpp
    control-vector GGUF added after its blocks; with either, soft_prompt may be None)."""
    quant_fields = {f.name for f in fields(QuantConfig)} - {"target", "recipe"}
    export_fields = {f.name for f in fields(ExportOptions)} - {"model", "soft_prompt", "out", "quant", "folding", "gate"}
    if unknown := sorted(set(options) - quant_fields - export_fields):
        raise UserError(f"fold() has no option {', '.join(unknown)}; options: "
                        f"{', '.join(sorted(quant_fields | export_fields))}")
    hints = typing.get_type_hints(QuantConfig) | typing.get_type_hints(ExportOptions)
    check_types("fold", soft_prompt=(soft_prompt, PathArg), out=(out, Path), model=(model, PathArg),
                target=(target, Target), recipe=(recipe, Recipe), folding=(folding, Folding),
                prompts=(prompts, Prompts), **{name: (value, hints[name]) for name, value in options.items()})
    quant = {k: v for k, v in options.items() if k in quant_fields}
    if quant.get("algorithm") is not None:
        quant["algorithm"] = _choice(Algorithm, quant["algorithm"], "algorithm")
    quant["keep_8bit"] = tuple(quant.get("keep_8bit", ()))
    return export_with(ExportOptions(
        model=resolve_model(model), soft_prompt=Path(soft_prompt) if soft_prompt is not None else None, out=Path(out),
        quant=QuantConfig(_choice(Target, target, "target"), _choice(Recipe, recipe, "recipe"), **quant),
        folding=_choice(Folding, folding, "folding"), gate=GateConfig(tuple(DEFAULT_PROMPTS) + tuple(prompts)),
        **{k: v for k, v in options.items() if k in export_fields}))


def export_with(opts: ExportOptions) -> Bundle:
    """`fold` from an ExportOptions (the CLI builds one from its flags)."""
    return Bundle(Path(opts.out), export_bundle(opts))


def check_types(function: str, **arguments: tuple[object, object]) -> None:
    """Each argument (value, type hint) of `function` of its type; else a UserError naming the argument, what it
    takes and what it got (Python would raise a TypeError deep inside, or worse, run with it)."""
    for name, (value, hint) in arguments.items():
        kinds = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        if not any(_is_a(value, kind) for kind in kinds):
            raise UserError(f"{function}(): {name} takes {' or '.join(map(_described, kinds))}, got "
                            f"{type(value).__name__} {_shown(value)}")


def _is_a(value, kind) -> bool:
    if kind is type(None):
        return value is None
    if kind is Path:
        return isinstance(value, (str, os.PathLike))
    if kind in (int, float):  # True is an int to Python, not a count or a size
        return isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return isinstance(value, (kind, str))
    if typing.get_origin(kind) is tuple:
        return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    if kind is Callable or typing.get_origin(kind) is Callable.__origin__:
        return callable(value)
    return isinstance(value, kind)


def _described(kind) -> str:
    if kind is type(None):
        return "None"
    if kind is Path:
        return "a path (str or Path)"
    if isinstance(kind, type) and issubclass(kind, Enum):
        return "one of " + ", ".join(repr(k.value) for k in kind)
    if typing.get_origin(kind) is tuple:
        return "a list of strings"
    if kind is Callable:
        return "a function"
    names = {bool: "True or False", int: "an integer", float: "a number", str: "a string"}
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _choice(kind, value, name: str):
    try:
        return kind(value)
    except ValueError:
        raise UserError(f"{name}={value!r} is not one of {', '.join(k.value for k in kind)}") from None
