"""Which layers' quantization moves the safety behavior most.

Each layer (a transformer block, the LM head) is quantized alone, in eager PyTorch with the soft
prompt's fp32 K/V in the cache (as the default prefix-kv bundles hold them), by simulating the recipe's arithmetic: weights rounded to `bits` symmetric
group-wise (as torchao and MatMulNBits store them), activations to int8 per token (8da4w's dynamic
quantization). For every calibration prompt we compare with fp32: KL of the reply's first-token
distribution (where the refuse-or-answer decision is made) and the refusal decision of the greedy
reply. The most sensitive layers are the candidates for `--keep-8bit`; the report checks the
suggestion by quantizing everything else.
"""
from dataclasses import asdict, dataclass

import torch
from tqdm import tqdm

from softfold.calibrate.simulate import layer_names, quantized
from softfold.export.quantize import in_layers
from softfold.reference.greedy import expand_cache, prefix_cache
from softfold.reference.reference import Reference
from softfold.reference.refusal import is_refusal


@dataclass(frozen=True)
class LayerSensitivity:
    layer: str  # module name in the folded model: "layers.3", "lm_head", or a set of them
    mean_kl: float  # KL(fp32 || quantized) of the reply's first token, mean over prompts
    top1: float  # agreement of the first token's argmax with fp32
    refusal_flips: int  # prompts whose refusal decision differs from fp32


@dataclass(frozen=True)
class SensitivityReport:
    bits: int
    group_size: int
    prompts: int
    layers: list[LayerSensitivity]  # most sensitive first
    all_quantized: LayerSensitivity
    suggested_keep_8bit: list[str]
    with_suggestion: LayerSensitivity  # everything quantized but the suggestion (kept at 8 bits)

    def to_json(self) -> dict:
        return asdict(self)

    def markdown(self) -> str:
        rows = [f"| {r.layer} | {r.mean_kl:.4f} | {r.top1:.3f} | {r.refusal_flips} |"
                for r in [*self.layers, self.all_quantized, self.with_suggestion]]
        return "\n".join([
            f"# Sensitivity: {self.bits}-bit weights (group {self.group_size}) + int8 activations, {self.prompts} prompts",
            "", "| quantized | mean KL (first token) | top-1 | refusal flips |", "|---|---|---|---|", *rows, "",
            f"Suggested: `--keep-8bit {' '.join(self.suggested_keep_8bit)}`" if self.suggested_keep_8bit
            else "No layer stands out: nothing to keep at 8 bits.", ""])


def _decisions(reference: Reference, prompt_ids: list[list[int]], new_tokens: int,
               kv=None) -> tuple[list[torch.Tensor], list[bool]]:
    """Greedy replies and their first-token logits; `kv`: the soft prompt's K/V, held fixed (fp32)."""
    firsts, refused = [], []
    for ids in prompt_ids:
        cache = expand_cache(reference.model.get_base_model(), kv, 1) if kv is not None else None
        reply, first = reference.greedy_with_first_logits(ids, new_tokens, cache)
        firsts.append(first)
        refused.append(is_refusal(reference.tokenizer.decode(reply, skip_special_tokens=True)))
    return firsts, refused


def _compare(layer: str, base: tuple, quant: tuple) -> LayerSensitivity:
    kl = [torch.nn.functional.kl_div(q.log_softmax(-1), b.log_softmax(-1), log_target=True, reduction="sum").item()
          for b, q in zip(base[0], quant[0])]
    top1 = [b.argmax() == q.argmax() for b, q in zip(base[0], quant[0])]
    flips = sum(b != q for b, q in zip(base[1], quant[1]))
    return LayerSensitivity(layer, sum(kl) / len(kl), sum(map(bool, top1)) / len(top1), flips)


def suggest(rows: list[LayerSensitivity], max_keep: int) -> list[str]:
    """Every layer that flips a decision, then the top layers until they hold half the summed single-layer KL."""
    chosen = [r.layer for r in rows if r.refusal_flips]
    total, held = sum(r.mean_kl for r in rows), sum(r.mean_kl for r in rows if r.refusal_flips)
    for r in rows:
        if held >= total / 2 or len(chosen) >= max_keep:
            break
        if r.layer not in chosen:
            chosen.append(r.layer)
            held += r.mean_kl
    return chosen[:max_keep]


def sensitivity(reference: Reference, prompts: list[str], bits: int = 4, group_size: int = 32, new_tokens: int = 16,
                max_keep: int = 4) -> SensitivityReport:
    """Quantize each layer alone, then all of them, then all but the suggestion; compare with fp32. The soft
    prompt's K/V stay fp32, as the (default) prefix-kv bundles hold them."""
    model = reference.model.get_base_model() if reference.n_virtual else reference.model
    prompt_ids = [reference.prompt_ids(p) for p in prompts]
    kv = prefix_cache(model, reference.model.get_prompt(batch_size=1)[0]) if reference.n_virtual else None
    fp32 = _decisions(reference, prompt_ids, new_tokens, kv)

    def measure(layers: tuple[str, ...], label: str, keep: tuple[str, ...] = ()) -> LayerSensitivity:
        with quantized(model, tuple(n for n in layers if not in_layers(n, keep)), bits, group_size), \
                quantized(model, keep, 8, 0):
            return _compare(label, fp32, _decisions(reference, prompt_ids, new_tokens, kv))

    names = layer_names(model)
    rows = [measure((name,), name) for name in tqdm(names, desc="sensitivity", unit="layer", leave=False)]
    rows.sort(key=lambda r: (r.refusal_flips, r.mean_kl), reverse=True)
    suggested = suggest(rows, max_keep)
    everything = tuple(names)
    return SensitivityReport(bits, group_size, len(prompts), rows, measure(everything, "all layers"), suggested,
                             measure(everything, f"all, {' '.join(suggested) or 'none'} at 8 bits", tuple(suggested)))
