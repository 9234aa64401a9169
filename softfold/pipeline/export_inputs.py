"""An export's inputs, read and checked once, in seconds, before any heavy work (docs/inputs.md): every stage after
this receives the `ExportInputs` it returns, never the paths again."""
from dataclasses import dataclass

from softfold.bundle.integrity import BUNDLE
from softfold.calibrate.prefix import CalibratedPrefix, check_prefix, load_prefix
from softfold.errors import UserError
from softfold.export.config import Folding
from softfold.export.model import linear_names
from softfold.export.quantize import in_layers
from softfold.files import check_out, file_sha256
from softfold.inputs.architecture import check_positions
from softfold.inputs.base_model import ModelSource
from softfold.inputs.control_vector import SteeringVectors
from softfold.inputs.gguf_header import gguf_tensor_types
from softfold.inputs.lora import LoraAdapter
from softfold.inputs.provenance import BaseModelFacts, base_model_facts, eval_summary
from softfold.inputs.read import read_inputs
from softfold.inputs.soft_prompt import SoftPrompt
from softfold.pipeline.options import ExportOptions


@dataclass(frozen=True)
class ExportInputs:
    model: ModelSource
    soft_prompt: SoftPrompt | None
    adapter: LoraAdapter | None
    steering: SteeringVectors | None
    prefix: CalibratedPrefix | None  # --prefix-kv, checked against the soft prompt and the recipe
    prefix_sha256: str | None  # of the --prefix-kv file
    facts: BaseModelFacts  # the base model's hub id and license, as its own files state them
    safety_eval: dict | None  # the soft prompt's eval.json, summarized for the model card
    source_types: dict[str, str]  # a GGUF source's tensor storage types (the rounding record); {} otherwise


def read_export_inputs(opts: ExportOptions) -> ExportInputs:
    """Everything the files and flags can tell, refused in seconds before any heavy work (the recipe's flags were
    checked when its QuantConfig was made)."""
    check_flags(opts)
    paths = [p for p in (opts.model, opts.soft_prompt, opts.adapter, opts.steering_vector, opts.prefix_kv,
                         opts.chat_template) if p]
    check_out(opts.out, paths, BUNDLE, opts.force)
    if opts.max_context < 8:
        raise UserError(f"--max-context must be at least 8 tokens, got {opts.max_context}")
    given = read_inputs(opts.model, opts.chat_template, opts.soft_prompt, opts.adapter, opts.steering_vector)
    config = given.model.config
    if not opts.trust_base_model:
        for adapter, what in ((given.soft_prompt, "soft prompt"), (given.adapter, "adapter")):
            if adapter is not None:
                adapter.trained_for.check(opts.model, config, adapter.path, what)
    check_positions(config, given.soft_prompt.num_virtual_tokens if given.soft_prompt else 0, opts.max_context)
    check_keep_8bit(opts.quant.keep_8bit, config.num_hidden_layers)
    prefix = calibrated_prefix(opts, given.soft_prompt)
    quantized = any(scheme is not None for scheme in opts.quant.schemes)
    return ExportInputs(given.model, given.soft_prompt, given.adapter, given.steering, prefix,
                        file_sha256(opts.prefix_kv) if prefix else None, base_model_facts(opts.model),
                        eval_summary(opts.soft_prompt) if opts.soft_prompt else None,
                        gguf_tensor_types(opts.model) if quantized and given.model.gguf else {})


def check_flags(opts: ExportOptions) -> None:
    """The flags that go together: something to add to the model (or --base-only, alone), a soft prompt to fold
    with virtual tokens."""
    given = [flag for flag, path in (("--soft-prompt", opts.soft_prompt), ("--adapter", opts.adapter),
                                     ("--steering-vector", opts.steering_vector)) if path]
    if opts.base_only and given:
        raise UserError(f"--base-only exports the model with nothing added: drop {' '.join(given)}, or --base-only")
    if not given and not opts.base_only:
        raise UserError("export needs --soft-prompt DIR (PEFT prompt tuning), --adapter DIR (PEFT LoRA), "
                        "--steering-vector FILE (llama.cpp control vector), or several of them (--base-only: the "
                        "model alone, with no safety added)")
    if opts.soft_prompt is None and opts.folding is Folding.VIRTUAL_TOKENS:
        raise UserError("--folding virtual-tokens folds a soft prompt: pass --soft-prompt DIR, or drop --folding")


def check_keep_8bit(keep_8bit: tuple[str, ...], n_layers: int) -> None:
    """Each --keep-8bit name is one of the model's layers (or a projection in one)."""
    linears = linear_names(n_layers)
    unknown = [k for k in keep_8bit if not any(in_layers(name, (k,)) for name in linears)]
    if unknown:
        raise UserError(f"--keep-8bit {' '.join(unknown)}: no such layer; this model has lm_head and layers.0 to "
                        f"layers.{n_layers - 1} (and their self_attn / mlp projections)")


def calibrated_prefix(opts: ExportOptions, soft_prompt: SoftPrompt | None) -> CalibratedPrefix | None:
    """The --prefix-kv file, checked against this soft prompt and recipe before any heavy work; None without one."""
    if opts.prefix_kv is None:
        return None
    if soft_prompt is None or opts.adapter is not None or opts.steering_vector is not None:
        raise UserError("--prefix-kv replaces a soft prompt's folded K/V computed without a LoRA or steering vectors: "
                        "pass --soft-prompt and neither --adapter nor --steering-vector (export folds the K/V of "
                        "the merged or steered model itself)")
    if opts.folding is not Folding.PREFIX_KV:
        raise UserError("--prefix-kv replaces the folded prefix K/V: it needs --folding prefix-kv, "
                        f"got {opts.folding.value}")
    prefix = load_prefix(opts.prefix_kv)
    check_prefix(prefix, soft_prompt, opts.quant.simulation() if opts.quant.weights is not None else None,
                 opts.prefix_kv)
    return prefix
