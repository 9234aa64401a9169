"""The weights a recipe holds when it does not round to nearest: GPTQ's (gptq.py), or the source's own 4-bit grid
with GPTQ for the Linears off it (grid.py). The one mapping from a recipe to its weights, shared by `export` and
`calibrate-prefix`.
"""
from softfold.calibrate.gptq import gptq_linears, gptq_round
from softfold.calibrate.grid import grid_linears
from softfold.export.config import Algorithm, QuantConfig, QuantSim
from softfold.export.fold import split_fused_rounded
from softfold.export.quantize import RoundedWeight, in_layers
from softfold.inputs.base_model import BaseModel
from softfold.inputs.soft_prompt import SoftPrompt


def gptq_for(base: BaseModel, soft_prompt: SoftPrompt | None, sim: QuantSim,
             virtual_tokens: bool = False) -> dict[str, RoundedWeight] | None:
    """The weights a recipe holds when it rounds by GPTQ or keeps the source's grid (`sim.algorithm`, the Linears off
    the grid by GPTQ); None for round-to-nearest. The one mapping from a recipe to its weights, shared by `export`
    and `calibrate-prefix`."""
    if sim.algorithm not in (Algorithm.GPTQ, Algorithm.GRID):
        return None
    rounded = _rounded(base, soft_prompt, sim, virtual_tokens)
    # by the folded model's names (Phi-3's fused projections split); a layer kept at 8 bits is never rounded
    return {n: w for n, w in split_fused_rounded(rounded, base.config).items() if not in_layers(n, sim.keep_8bit)}


def _rounded(base: BaseModel, soft_prompt: SoftPrompt | None, sim: QuantSim,
             virtual_tokens: bool) -> dict[str, RoundedWeight]:
    """By the HF model's module names."""
    kept = {}
    if sim.algorithm is Algorithm.GRID:
        kept = grid_linears(base.model, sim.group_size, sim.weight_bits, sim.keep_8bit)
    if len(kept) == len(gptq_linears(base.model, sim.group_size, sim.keep_8bit)):
        return kept
    return kept | gptq_round(base, soft_prompt, sim.weight_bits, sim.group_size, sim.keep_8bit + tuple(kept),
                             virtual_tokens=virtual_tokens)


def rounding_record(linears: list[str], quant: QuantConfig, rounded: dict[str, RoundedWeight] | None,
                    source_types: dict[str, str]) -> dict[str, dict]:
    """What each Linear and the embedding table became, by folded module name: {"bits", "rounding"} (grid: the
    source's own grid kept exactly; gptq; rtn or hqq: the runtime quantizer's), plus "source_type", the tensor's
    storage type in a GGUF source (Q4_K, Q8_0, ...). The manifest's `quantization.tensors`."""
    weights, rounded = quant.weights, rounded or {}
    bits = getattr(weights, "weight_bits", getattr(weights, "bits", 8))
    keep_8bit = getattr(weights, "keep_8bit", ())
    quantizer = getattr(weights, "algorithm", Algorithm.RTN)
    quantizer = quantizer.value if quantizer in (Algorithm.RTN, Algorithm.HQQ) else Algorithm.RTN.value
    record = {}
    for name in linears:
        if in_layers(name, keep_8bit):
            record[name] = {"bits": 8, "rounding": Algorithm.RTN.value}
        elif name in rounded:
            kept = rounded[name].offset is not None
            record[name] = {"bits": bits, "rounding": (Algorithm.GRID if kept else Algorithm.GPTQ).value}
        else:
            record[name] = {"bits": bits, "rounding": quantizer}
    embedding_bits = quant.embedding.bits if quant.embedding else getattr(weights, "embedding_bits", 0)
    record["embed_tokens"] = {"bits": embedding_bits, "rounding": Algorithm.RTN.value} if embedding_bits else {"bits": 32}
    for name, entry in record.items():
        source = source_types.get(name) or (source_types.get("embed_tokens") if name == "lm_head" else None)
        if source:
            entry["source_type"] = source
    return record
