"""`softfold export`: load -> merge the LoRA -> fold (soft prompt, steering vectors) -> the gate's reference samples
(then the fp32 model is freed) -> lower -> tokenizer -> parity -> manifest, into one atomic bundle."""
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from softfold.bundle import atomic_dir, check_out, file_sha256, tool_versions, write_manifest
from softfold.bundle_readme import app_readme
from softfold.calibrate.feeds import onnx_prefill_feeds
from softfold.calibrate.prefix import CalibratedPrefix, check_prefix, load_prefix
from softfold.calibrate.prompts import calibration_set
from softfold.calibrate.rounding import gptq_for, rounding_record
from softfold.engines import engine_for
from softfold.errors import UserError
from softfold.gguf_header import gguf_tensor_types
from softfold.export.executorch import export_pte, runner_metadata
from softfold.export.fold import build_folded_model, build_virtual_token_model, set_prefix_kv
from softfold.export.model import Transformer, linear_names, with_offsets
from softfold.export.onnx import convert_to_ort, export_onnx, write_genai_config
from softfold.export.onnx_model import fused_qkv_rounded
from softfold.export.config import MODEL_FILE, Folding, OnnxStaticInt8, QuantConfig, Recipe, Target
from softfold.export.quantize import RoundedWeight, in_layers, quantize_executorch, quantize_onnx
from softfold.load import (BaseModel, SoftPrompt, check_base_model, check_chat_template_input, check_positions,
                           load_base, load_soft_prompt, read_config)
from softfold.lora import LoraAdapter, load_lora, merged
from softfold.native_io import release_memory
from softfold.parity import GateConfig, ParityReport, measure_engine, recipe_thresholds, sample_reference, write_reports
from softfold.prompt_format import PromptFormat, chat_ids, derive
from softfold.provenance import base_model_facts, safety_eval
from softfold.reference import Reference, eos_ids
from softfold.steering import SteeringVectors, load_steering, steered
from softfold.virtual_tokens import VirtualTokens, add_virtual_tokens


@dataclass(frozen=True)
class ExportOptions:
    """One export: its inputs (a soft prompt, a LoRA adapter, steering vectors: any of them), its recipe (the target
    with it), how the soft prompt is folded, and its gate."""
    model: Path
    soft_prompt: Path | None  # a PEFT prompt-tuning directory
    out: Path
    quant: QuantConfig = QuantConfig()
    folding: Folding = Folding.PREFIX_KV
    max_context: int = 2048
    prefix_kv: Path | None = None  # prefix K/V calibrated to this recipe (`softfold calibrate-prefix`)
    gate: GateConfig = GateConfig()
    force: bool = False
    trust_base_model: bool = False  # export even when the soft prompt names another base model
    chat_template: Path | None = None  # a Jinja file replacing the model's chat template (needed when it has none)
    adapter: Path | None = None  # a PEFT LoRA directory, merged into the weights before folding and quantization
    steering_vector: Path | None = None  # a llama.cpp control-vector GGUF, its vectors added after their blocks
    base_only: bool = False  # nothing added: the recipe's program of the base model alone (a cost anchor)

    def __post_init__(self):
        object.__setattr__(self, "quant", self.quant.resolved(self.folding))

    @property
    def target(self) -> Target:
        return self.quant.target

    @property
    def recipe(self) -> Recipe:
        return self.quant.recipe


def export_bundle(opts: ExportOptions) -> ParityReport:
    """Write the bundle to opts.out (only once complete) and return its parity report."""
    soft_prompt, adapter, steering = check_inputs(opts)
    prefix = calibrated_prefix(opts, soft_prompt)
    with (tqdm(total=6, desc="loading model", unit="stage", leave=False) as stages,
          atomic_dir(opts.out, replace=opts.force) as tmp):
        base = load_base(opts.model, opts.chat_template)
        tokenizer, virtual = base.tokenizer, None
        if opts.folding is Folding.VIRTUAL_TOKENS:
            tokenizer, virtual = add_virtual_tokens(base.tokenizer, soft_prompt.num_virtual_tokens)
        prompt_format = derive_prompt_format(tokenizer)
        _advance(stages, _applying(soft_prompt, adapter, steering, opts.folding))
        folded, rounded = _export_model(merged(base, adapter), soft_prompt, steering, opts, virtual, prefix)
        release_memory()  # folding and rounding leave gigabytes freed but resident
        _advance(stages, "the gate's reference (PyTorch)")
        # the LoRA unmerged, as PEFT computes it; the steering vectors added by hooks
        reference = sample_reference(Reference(base, opts.soft_prompt, adapter, steering), list(opts.gate.prompts),
                                     opts.max_context)
        base.release_weights()  # nothing reads the fp32 model again: lowering, the memory peak, runs without it
        release_memory()
        _advance(stages, f"lowering to {opts.target.value}")
        _write_model(folded, base, opts, rounded, tmp)
        del folded
        save_tokenizer(tokenizer, tmp)
        _advance(stages, "parity gate")
        engine = engine_for(tmp, opts.target.value, MODEL_FILE[opts.target], virtual)
        thresholds = opts.gate.thresholds or recipe_thresholds(opts.recipe)
        report = measure_engine(reference, engine, opts.recipe.value, thresholds, check_engine=opts.gate.check_engine)
        _advance(stages, "writing bundle")
        write_reports(report, tmp)
        manifest = _manifest(base, soft_prompt, adapter, steering, prompt_format, opts, report, virtual, prefix,
                             rounded)
        (tmp / "README.md").write_text(app_readme(manifest))
        write_manifest(tmp, manifest)
        _advance(stages, "done")
    return report


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
    check_out(opts.out, inputs, opts.force)
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


def _applying(soft_prompt: SoftPrompt | None, adapter: LoraAdapter | None, steering: SteeringVectors | None,
              folding: Folding) -> str:
    """What the export does to the model, for its progress bar."""
    steps = [f"merging LoRA r={adapter.rank}"] if adapter else []
    steps += [f"folding N={soft_prompt.num_virtual_tokens} ({folding.value})"] if soft_prompt else []
    steps += [f"adding steering vectors after {len(steering.layers)} blocks"] if steering else []
    return ", ".join(steps) or "nothing added (--base-only)"


def _advance(stages: tqdm, next_stage: str) -> None:
    stages.update(1)
    stages.set_description(next_stage)


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


def _export_model(base: BaseModel, soft_prompt: SoftPrompt | None, steering: SteeringVectors | None,
                  opts: ExportOptions, virtual: VirtualTokens | None,
                  prefix: CalibratedPrefix | None) -> tuple[Transformer, dict[str, RoundedWeight] | None]:
    """The model the bundle holds, folded and (ExecuTorch) quantized, and the weights calibrate/ rounded (None where
    the runtime's quantizer does). `base`: the model whose weights the bundle holds (a LoRA already merged)."""
    vectors = steering.vectors if steering else {}
    if virtual:
        folded = build_virtual_token_model(base.model, soft_prompt.embeddings, virtual.start, opts.max_context,
                                           vectors)
    else:
        folded = build_folded_model(base.model, soft_prompt.embeddings if soft_prompt else None, opts.max_context,
                                    vectors)
        if prefix is not None:
            set_prefix_kv(folded, prefix.kv)
    with steered(base.model, vectors):  # GPTQ calibrates on the activations the bundle computes
        rounded = _gptq_rounded(base, soft_prompt, opts.quant, virtual is not None)
    if rounded:
        with_offsets(folded, rounded)
    if opts.target is Target.EXECUTORCH:
        quantize_executorch(folded, *opts.quant.schemes, rounded=rounded)
        if opts.recipe is Recipe.FP16:
            folded = folded.half()
    return folded, rounded


def _write_model(folded: Transformer, base: BaseModel, opts: ExportOptions, rounded: dict[str, RoundedWeight] | None,
                 out: Path) -> None:
    """The model file(s) in `out`: `folded` lowered to the target (ONNX: exported, then quantized by ORT's
    quantizers). `base` gives the token ids and the tokenizer; its weights may be released."""
    if opts.target is Target.EXECUTORCH:
        export_pte(folded, runner_metadata(folded, _bos_id(base), eos_ids(base)), out / "model.pte")
        return
    write_genai_config(folded, _bos_id(base), eos_ids(base), out, MODEL_FILE[opts.target])
    scheme = opts.quant.weights
    with tempfile.TemporaryDirectory() as scratch:
        onnx_path = (Path(scratch) if scheme or opts.target is Target.ORT else out) / "model.onnx"
        export_onnx(folded, onnx_path)
        if scheme:
            target_dir = out if opts.target is Target.ONNX else Path(scratch) / "quantized"
            target_dir.mkdir(exist_ok=True)
            quantize_onnx(onnx_path, target_dir / "model.onnx", scheme, _calibration_feeds(base, scheme, onnx_path),
                          fused_qkv_rounded(rounded) if rounded else None)
            onnx_path = target_dir / "model.onnx"
        if opts.target is Target.ORT:
            convert_to_ort(onnx_path, out / "model.ort", out / "required_operators.config")


def _gptq_rounded(base: BaseModel, soft_prompt: SoftPrompt | None, quant: QuantConfig,
                  virtual_tokens: bool) -> dict[str, RoundedWeight] | None:
    """The weights calibrate/ rounds (GPTQ from the fp32 model, soft prompt in context; or the source's grid);
    None where the runtime's own pass rounds them."""
    if not quant.rounds_by_calibration():
        return None
    return gptq_for(base, soft_prompt, quant.simulation(), virtual_tokens)


def _calibration_feeds(base: BaseModel, scheme, onnx_path: Path) -> list[dict] | None:
    if not isinstance(scheme, OnnxStaticInt8):
        return None
    harmful, benign = calibration_set(scheme.prompts_per_class)
    return onnx_prefill_feeds(onnx_path, [chat_ids(base.tokenizer, p) for p in harmful + benign])


def derive_prompt_format(tokenizer) -> PromptFormat:
    return derive(lambda messages, add_generation_prompt: tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=False))


def _bos_id(base: BaseModel) -> int:
    bos = base.tokenizer.bos_token_id
    return bos if bos is not None else (base.config.bos_token_id or 0)


def save_tokenizer(tokenizer, out: Path) -> None:
    """tokenizer.json for the runtimes, plus tokenizer_config.json carrying the chat template."""
    tokenizer.save_pretrained(out)
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = tokenizer.chat_template
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _manifest(base: BaseModel, soft_prompt: SoftPrompt | None, adapter: LoraAdapter | None,
              steering: SteeringVectors | None, prompt_format: PromptFormat, opts: ExportOptions, report: ParityReport,
              virtual: VirtualTokens | None, prefix: CalibratedPrefix | None,
              rounded: dict[str, RoundedWeight] | None) -> dict:
    cfg, stop_ids = base.config, eos_ids(base)
    schemes = {type(s).__name__: asdict(s) for s in opts.quant.schemes if s is not None}
    if schemes:
        sources = gguf_tensor_types(Path(base.source)) if base.source.endswith(".gguf") else {}
        schemes["tensors"] = rounding_record(linear_names(cfg.num_hidden_layers), opts.quant, rounded, sources)
    facts = base_model_facts(opts.model)
    return {
        "backend": opts.target.value,
        "recipe": opts.recipe.value,
        "model": {
            "architecture": cfg.model_type, "source": base.source, "vocab_size": cfg.vocab_size,
            "hidden_size": cfg.hidden_size, "num_layers": cfg.num_hidden_layers,
            # what the runtime's context holds: in virtual-token mode the N virtual tokens take part of it
            "context_length": opts.max_context + (len(virtual.ids) if virtual else 0),
            "bos_id": _bos_id(base), "eos_ids": stop_ids,
            "stop_ids": stop_ids, "stop_strings": [base.tokenizer.decode([i]) for i in stop_ids],
            "file": MODEL_FILE[opts.target],
            **({"base_model": facts.hub_id} if facts.hub_id else {}),
            **({"license": facts.license} if facts.license else {}),
        },
        **({"soft_prompt": _soft_prompt_record(soft_prompt, opts, virtual, prefix)} if soft_prompt else {}),
        **({"adapter": adapter.record()} if adapter else {}),
        **({"steering": steering.record()} if steering else {}),
        "prompt_format": prompt_format.to_json(),
        **({"quantization": schemes} if schemes else {}),
        "tools": tool_versions(),
        "parity": report.summary(),
    }


def _soft_prompt_record(soft_prompt: SoftPrompt, opts: ExportOptions, virtual: VirtualTokens | None,
                        prefix: CalibratedPrefix | None) -> dict:
    evaluation = safety_eval(opts.soft_prompt)
    return {"num_virtual_tokens": soft_prompt.num_virtual_tokens, "folding": opts.folding.value,
            "sha256": soft_prompt.sha256, "source": str(opts.soft_prompt),
            **({"virtual_token_ids": virtual.ids} if virtual else {}),
            **({"prefix_kv": _prefix_record(opts.prefix_kv, prefix)} if prefix else {}),
            **({"safety_eval": evaluation} if evaluation else {})}


def _prefix_record(path: Path, prefix: CalibratedPrefix) -> dict:
    return {"calibrated_for": prefix.simulation.to_json(), "source": str(path), "sha256": file_sha256(Path(path)),
            "held_out_kl_before": prefix.held_out_kl_before, "held_out_kl_after": prefix.held_out_kl_after,
            "rejected_held_out_kl": prefix.rejected_held_out_kl}
