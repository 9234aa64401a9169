"""`softfold export` (docs/folding.md): load -> merge the LoRA -> fold (soft prompt, steering vectors) -> the
gate's reference samples (then the fp32 model is freed) -> lower -> tokenizer -> parity -> manifest, into one
atomic bundle."""
import tempfile
from pathlib import Path

from tqdm import tqdm

from softfold.bundle.card import app_readme
from softfold.bundle.integrity import write_manifest
from softfold.bundle.prompt_format import derive_prompt_format
from softfold.bundle.tokenizer_files import save_tokenizer
from softfold.bundle.virtual_tokens import VirtualTokens, add_virtual_tokens
from softfold.calibrate.feeds import onnx_prefill_feeds
from softfold.calibrate.prompts import calibration_set
from softfold.calibrate.rounding import gptq_for
from softfold.engines.engine import engine_for
from softfold.export.config import MODEL_FILE, Folding, OnnxStaticInt8, QuantConfig, Recipe, Target
from softfold.export.executorch import export_pte, runner_metadata
from softfold.export.fold import build_folded_model, build_virtual_token_model, set_prefix_kv
from softfold.export.model import Transformer, with_offsets
from softfold.export.onnx import convert_to_ort, export_onnx, write_genai_config
from softfold.export.onnx_model import fused_qkv_rounded
from softfold.export.quantize import RoundedWeight, quantize_executorch, quantize_onnx
from softfold.files import atomic_dir
from softfold.inputs.base_model import BaseModel, bos_id, eos_ids
from softfold.inputs.chat_template import chat_ids
from softfold.inputs.control_vector import steered
from softfold.inputs.lora import merged
from softfold.inputs.soft_prompt import SoftPrompt
from softfold.native_io import release_memory
from softfold.parity.gate import ParityReport, measure_engine, recipe_thresholds, sample_reference
from softfold.parity.gate_report import write_reports
from softfold.pipeline.export_inputs import ExportInputs, read_export_inputs
from softfold.pipeline.manifest_record import manifest_of
from softfold.pipeline.options import ExportOptions
from softfold.reference.reference import Reference


def export_bundle(opts: ExportOptions) -> ParityReport:
    """Write the bundle to opts.out (only once complete) and return its parity report."""
    inputs = read_export_inputs(opts)
    with (tqdm(total=6, desc="loading model", unit="stage", leave=False) as stages,
          atomic_dir(opts.out, replace=opts.force) as tmp):
        base = inputs.model.load()
        tokenizer, virtual = base.tokenizer, None
        if opts.folding is Folding.VIRTUAL_TOKENS:
            tokenizer, virtual = add_virtual_tokens(base.tokenizer, inputs.soft_prompt.num_virtual_tokens)
        prompt_format = derive_prompt_format(tokenizer)
        _advance(stages, _applying(inputs, opts.folding))
        folded, rounded = _export_model(merged(base, inputs.adapter), inputs, opts, virtual)
        release_memory()  # folding and rounding leave gigabytes freed but resident
        _advance(stages, "the gate's reference (PyTorch)")
        # the LoRA unmerged, as PEFT computes it; the steering vectors added by hooks
        reference = sample_reference(Reference(base, inputs.soft_prompt, inputs.adapter, inputs.steering),
                                     list(opts.gate.prompts), opts.max_context)
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
        manifest = manifest_of(base, inputs, opts, prompt_format, report, virtual, rounded)
        (tmp / "README.md").write_text(app_readme(manifest))
        write_manifest(tmp, manifest)
        _advance(stages, "done")
    return report


def _applying(inputs: ExportInputs, folding: Folding) -> str:
    """What the export does to the model, for its progress bar."""
    steps = [f"merging LoRA r={inputs.adapter.rank}"] if inputs.adapter else []
    steps += [f"folding N={inputs.soft_prompt.num_virtual_tokens} ({folding.value})"] if inputs.soft_prompt else []
    steps += [f"adding steering vectors after {len(inputs.steering.layers)} blocks"] if inputs.steering else []
    return ", ".join(steps) or "nothing added (--base-only)"


def _advance(stages: tqdm, next_stage: str) -> None:
    stages.update(1)
    stages.set_description(next_stage)


def _export_model(base: BaseModel, inputs: ExportInputs, opts: ExportOptions,
                  virtual: VirtualTokens | None) -> tuple[Transformer, dict[str, RoundedWeight] | None]:
    """The model the bundle holds, folded and (ExecuTorch) quantized, and the weights calibrate/ rounded (None where
    the runtime's quantizer does). `base`: the model whose weights the bundle holds (a LoRA already merged)."""
    soft_prompt, vectors = inputs.soft_prompt, inputs.steering.vectors if inputs.steering else {}
    if virtual:
        folded = build_virtual_token_model(base.model, soft_prompt.embeddings, virtual.start, opts.max_context,
                                           vectors)
    else:
        folded = build_folded_model(base.model, soft_prompt.embeddings if soft_prompt else None, opts.max_context,
                                    vectors)
        if inputs.prefix is not None:
            set_prefix_kv(folded, inputs.prefix.kv)
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
        export_pte(folded, runner_metadata(folded, bos_id(base), eos_ids(base)), out / "model.pte")
        return
    write_genai_config(folded, bos_id(base), eos_ids(base), out, MODEL_FILE[opts.target])
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
