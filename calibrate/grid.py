"""Weights already on a 4-bit grid keep it (`--algorithm grid`): no rounding at all.

A model loaded from a 4-bit GGUF is already quantized: transformers dequantizes Q4_1 blocks of 32 weights
to w = d q + m (q = 0..15, the block's minimum at q = 0 and its maximum at q = 15). Rounding those weights
again to the runtimes' symmetric grid (torchao, MatMulNBits: w = s (q - 8)) adds a second rounding error,
the largest error in the 4-bit bundles. Instead each block is split into the symmetric grid with s = d,
w = d (q - 8) + (m + 8 d), and the remainder, constant over the block, stays fp32 beside the 4-bit weights
(`export.model.OffsetLinear`): y = x W^T + (block sums of x) @ offsets. The bundle computes the source
model's weights exactly, at 1 bit per weight more (the fp32 offsets, one per block of 32).

Linears not on such a grid (SmolLM2's tied Q8_0 embedding as the LM head, the random weights of test models)
are rounded by GPTQ, as `--algorithm gptq` would.
"""
import torch
from torch import nn

from softfold.calibrate.gptq import gptq_linears
from softfold.export.quantize import RoundedWeight


def affine_grid(weight: torch.Tensor, group_size: int, bits: int = 4) -> RoundedWeight | None:
    """`weight` [out, in] as a symmetric `bits`-bit grid plus one offset per group, exactly (up to fp32 rounding of
    d q + m); None when some group is not on an affine grid spanning all 2**bits levels from its min to its max."""
    out_features, in_features = weight.shape
    if in_features % group_size:
        return None
    levels = 2 ** bits - 1
    w = weight.detach().float().reshape(out_features, -1, group_size)
    low, high = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
    step = (high - low) / levels
    safe = torch.where(step > 0, step, torch.ones_like(step))
    q = ((w - low) / safe).round().clamp(0, levels)
    if ((step * q + low - w).abs() > 1e-6 * w.abs().amax(-1, keepdim=True)).any():
        return None
    half = 2 ** (bits - 1)
    return RoundedWeight((q - half).to(torch.int8).flatten(1), step.squeeze(-1),
                         offset=(low + half * step).squeeze(-1))


def grid_linears(model: nn.Module, group_size: int, bits: int = 4,
                 skip: tuple[str, ...] = ()) -> dict[str, RoundedWeight]:
    """The Linears (of those the recipe quantizes, minus `skip`) whose weights lie on an affine grid, by module name."""
    modules = {n.removeprefix("model."): m for n, m in model.named_modules()}
    found = {name: affine_grid(modules[name].weight, group_size, bits) for name in gptq_linears(model, group_size, skip)}
    return {name: w for name, w in found.items() if w is not None}
