"""What an export records in its bundle's manifest.json (docs/bundle.md): the model's facts, each input's
source and sha256, the recipe's schemes, the tools, the gate's summary."""
from dataclasses import asdict
from pathlib import Path

from softfold.bundle.integrity import tool_versions
from softfold.bundle.prompt_format import PromptFormat
from softfold.bundle.virtual_tokens import VirtualTokens
from softfold.calibrate.prefix import CalibratedPrefix
from softfold.calibrate.rounding import rounding_record
from softfold.export.config import MODEL_FILE
from softfold.export.model import linear_names
from softfold.export.quantize import RoundedWeight
from softfold.inputs.base_model import BaseModel, bos_id, eos_ids
from softfold.parity.gate import ParityReport
from softfold.pipeline.export_inputs import ExportInputs
from softfold.pipeline.options import ExportOptions


def manifest_of(base: BaseModel, inputs: ExportInputs, opts: ExportOptions, prompt_format: PromptFormat,
                report: ParityReport, virtual: VirtualTokens | None, rounded: dict[str, RoundedWeight] | None) -> dict:
    """The manifest's content (integrity.write_manifest adds the files and the schema version)."""
    cfg, stop_ids, facts = base.config, eos_ids(base), inputs.facts
    schemes = {type(s).__name__: asdict(s) for s in opts.quant.schemes if s is not None}
    if schemes:
        schemes["tensors"] = rounding_record(linear_names(cfg.num_hidden_layers), opts.quant, rounded,
                                             inputs.source_types)
    return {
        "backend": opts.target.value,
        "recipe": opts.recipe.value,
        "model": {
            "architecture": cfg.model_type, "source": str(inputs.model.path), "vocab_size": cfg.vocab_size,
            "hidden_size": cfg.hidden_size, "num_layers": cfg.num_hidden_layers,
            # what the runtime's context holds: in virtual-token mode the N virtual tokens take part of it
            "context_length": opts.max_context + (len(virtual.ids) if virtual else 0),
            "bos_id": bos_id(base), "eos_ids": stop_ids,
            "stop_ids": stop_ids, "stop_strings": [base.tokenizer.decode([i]) for i in stop_ids],
            "file": MODEL_FILE[opts.target],
            **({"base_model": facts.hub_id} if facts.hub_id else {}),
            **({"license": facts.license} if facts.license else {}),
        },
        **({"soft_prompt": _soft_prompt_record(inputs, opts, virtual)} if inputs.soft_prompt else {}),
        **({"adapter": inputs.adapter.record()} if inputs.adapter else {}),
        **({"steering": inputs.steering.record()} if inputs.steering else {}),
        "prompt_format": prompt_format.to_json(),
        **({"quantization": schemes} if schemes else {}),
        "tools": tool_versions(),
        "parity": report.summary(),
    }


def _soft_prompt_record(inputs: ExportInputs, opts: ExportOptions, virtual: VirtualTokens | None) -> dict:
    soft_prompt = inputs.soft_prompt
    return {"num_virtual_tokens": soft_prompt.num_virtual_tokens, "folding": opts.folding.value,
            "sha256": soft_prompt.sha256, "source": str(soft_prompt.path),
            **({"virtual_token_ids": virtual.ids} if virtual else {}),
            **({"prefix_kv": prefix_record(opts.prefix_kv, inputs.prefix, inputs.prefix_sha256)}
               if inputs.prefix else {}),
            **({"safety_eval": inputs.safety_eval} if inputs.safety_eval else {})}


def prefix_record(path: Path, prefix: CalibratedPrefix, sha256: str) -> dict:
    """The manifest's record of a --prefix-kv file: what it was calibrated for, where it came from, how it did."""
    return {"calibrated_for": prefix.simulation.to_json(), "source": str(path), "sha256": sha256,
            "held_out_kl_before": prefix.held_out_kl_before, "held_out_kl_after": prefix.held_out_kl_after,
            "rejected_held_out_kl": prefix.rejected_held_out_kl}
