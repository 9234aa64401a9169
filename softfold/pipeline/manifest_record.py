"""What an export records in its bundle's manifest.json (docs/bundle.md): the model's facts, each input's
source and sha256, the recipe's schemes, the tools, the gate's summary."""
from dataclasses import asdict
from pathlib import Path
from softfold.files import file_sha256
from softfold.bundle.integrity import tool_versions
from softfold.calibrate.prefix import CalibratedPrefix
from softfold.calibrate.rounding import rounding_record
from softfold.inputs.gguf_header import gguf_tensor_types
from softfold.export.model import linear_names
from softfold.export.config import MODEL_FILE
from softfold.export.quantize import RoundedWeight
from softfold.inputs.base_model import BaseModel
from softfold.inputs.soft_prompt import SoftPrompt
from softfold.inputs.lora import LoraAdapter
from softfold.parity.gate import ParityReport
from softfold.bundle.prompt_format import PromptFormat
from softfold.inputs.provenance import base_model_facts, eval_summary
from softfold.inputs.base_model import eos_ids
from softfold.inputs.control_vector import SteeringVectors
from softfold.bundle.virtual_tokens import VirtualTokens
from softfold.inputs.base_model import _bos_id
from softfold.pipeline.options import ExportOptions


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
    evaluation = eval_summary(opts.soft_prompt)
    return {"num_virtual_tokens": soft_prompt.num_virtual_tokens, "folding": opts.folding.value,
            "sha256": soft_prompt.sha256, "source": str(opts.soft_prompt),
            **({"virtual_token_ids": virtual.ids} if virtual else {}),
            **({"prefix_kv": _prefix_record(opts.prefix_kv, prefix)} if prefix else {}),
            **({"safety_eval": evaluation} if evaluation else {})}


def _prefix_record(path: Path, prefix: CalibratedPrefix) -> dict:
    return {"calibrated_for": prefix.simulation.to_json(), "source": str(path), "sha256": file_sha256(Path(path)),
            "held_out_kl_before": prefix.held_out_kl_before, "held_out_kl_after": prefix.held_out_kl_after,
            "rejected_held_out_kl": prefix.rejected_held_out_kl}
