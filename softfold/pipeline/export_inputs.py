"""An export's inputs, read and checked once, in seconds, before any heavy work: the typed objects every later
stage receives."""
from softfold.files import check_out
from softfold.calibrate.prefix import CalibratedPrefix, check_prefix, load_prefix
from softfold.errors import UserError
from softfold.export.model import linear_names
from softfold.export.config import Folding
from softfold.export.quantize import in_layers
from softfold.inputs.base_model import check_base_model, check_chat_template_input, read_config
from softfold.inputs.soft_prompt import SoftPrompt, load_soft_prompt
from softfold.inputs.architecture import check_positions
from softfold.inputs.lora import LoraAdapter, load_lora
from softfold.inputs.control_vector import SteeringVectors, load_steering
from softfold.pipeline.options import ExportOptions
from softfold.bundle.integrity import BUNDLE


def check_inputs(opts: ExportOptions) -> tuple[SoftPrompt | None, LoraAdapter | None, SteeringVectors | None]:
    """Everything the files and flags can tell, refused in seconds before any heavy work (the recipe's flags were
    checked when its QuantConfig was made); the soft prompt, the LoRA adapter and the steering vectors, each when
    given."""
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
    inputs = [p for p in (opts.model, opts.soft_prompt, opts.adapter, opts.steering_vector, opts.prefix_kv,
                          opts.chat_template) if p]
    check_out(opts.out, inputs, BUNDLE, opts.force)
    if opts.max_context < 8:
        raise UserError(f"--max-context must be at least 8 tokens, got {opts.max_context}")
    config = read_config(opts.model)
    check_chat_template_input(opts.model, opts.chat_template)
    soft_prompt = load_soft_prompt(opts.soft_prompt, config.hidden_size) if opts.soft_prompt else None
    adapter = load_lora(opts.adapter, config) if opts.adapter else None
    steering = load_steering(opts.steering_vector, config) if opts.steering_vector else None
    if not opts.trust_base_model:
        for path, what in ((opts.soft_prompt, "soft prompt"), (opts.adapter, "adapter")):
            if path:
                check_base_model(path, opts.model, config, what)
    check_positions(config, soft_prompt.num_virtual_tokens if soft_prompt else 0, opts.max_context)
    linears = linear_names(config.num_hidden_layers)
    unknown = [k for k in opts.quant.keep_8bit if not any(in_layers(name, (k,)) for name in linears)]
    if unknown:
        raise UserError(f"--keep-8bit {' '.join(unknown)}: no such layer; this model has lm_head and layers.0 to "
                        f"layers.{config.num_hidden_layers - 1} (and their self_attn / mlp projections)")
    return soft_prompt, adapter, steering


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
