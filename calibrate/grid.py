"""Weights already on a 4-bit grid keep it (`--algorithm grid`): no rounding at all.

A model loaded from a 4-bit GGUF is already quantized: transformers dequantizes Q4_1 blocks of 32 weights
to w = d q + m (q = 0..15, the block's minimum at q = 0 and its maximum at q = 15), Q4_K sub-blocks of 32 to the
same form (d and m from 6-bit scales and minimums, so a sub-block may use only some of the 16 levels), Q4_0 blocks
to w = d (q - 8). The grid is recovered from the dequantized values alone, so it does not matter which file or
format they came from. Rounding those weights
again to the runtimes' symmetric grid (torchao, MatMulNBits: w = s (q - 8)) adds a second rounding error,
the largest error in the 4-bit bundles. Instead each block is split into the symmetric grid with s = d,
w = d (q - 8) + (m + 8 d), and the remainder, constant over the block, stays fp32 beside the 4-bit weights
(`export.model.OffsetLinear`): y = x W^T + (block sums of x) @ offsets. The bundle computes the source
model's weights exactly, at 1 bit per weight more (the fp32 offsets, one per block of 32); `--offset-bits 8`
stores them as int8 per output channel in ExecuTorch bundles, which the simulation does not reproduce.

Linears not on such a grid (SmolLM2's tied Q8_0 embedding as the LM head; Gemma 3 270M's Q5_0, Q6_K and Q8_0
Linears, 99 of its 126; the random weights of test models) are rounded by GPTQ, as `--algorithm gptq` would.
"""
import torch
from torch import nn

from softfold.calibrate.gptq import gptq_linears
from softfold.export.quantize import RoundedWeight


def affine_grid(weight: torch.Tensor, group_size: int, bits: int = 4) -> RoundedWeight | None:
    """`weight` [out, in] as a symmetric `bits`-bit grid plus one offset per group, exactly (up to fp32 rounding of
    d q + m); None when some group's values are not all on an affine grid of 2**bits levels.

    A Q4_1 block spans its 16 levels from min to max (step (max - min) / 15). A Q4_K sub-block need not: its scale
    and minimum are searched and rounded to 6 bits, so its values may use a few levels only; its step is then the
    smallest gap between its values, or a whole fraction of it."""
    out_features, in_features = weight.shape
    if in_features % group_size:
        return None
    levels = 2 ** bits - 1
    w = weight.detach().float().reshape(-1, group_size)
    low, high = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
    tol = 1e-6 * w.abs().amax(-1, keepdim=True)
    step = (high - low) / levels
    off = ~_fits(w, low, step, levels, tol)
    if off.any():
        found = _gap_steps(w[off], low[off], high[off], levels, tol[off])
        if found is None:
            return None
        step[off] = found
    safe = torch.where(step > 0, step, torch.ones_like(step))
    q = ((w - low) / safe).round().clamp(0, levels)
    half = 2 ** (bits - 1)
    shape = (out_features, -1)
    return RoundedWeight((q - half).to(torch.int8).reshape(out_features, in_features), step.reshape(shape),
                         offset=(low + half * step).reshape(shape))


def _fits(w: torch.Tensor, low: torch.Tensor, step: torch.Tensor, levels: int, tol: torch.Tensor) -> torch.Tensor:
    """Per group (row of w): every value is low + step * q for an integer q in 0..levels."""
    safe = torch.where(step > 0, step, torch.ones_like(step))
    q = ((w - low) / safe).round()
    return ((q <= levels).all(-1, keepdim=True) & ((safe * q + low - w).abs() <= tol).all(-1, keepdim=True)).squeeze(-1)


def _gap_steps(w: torch.Tensor, low: torch.Tensor, high: torch.Tensor, levels: int,
               tol: torch.Tensor) -> torch.Tensor | None:
    """For groups that use only some of the levels: the step, [groups, 1], or None when some group has none."""
    gaps = w.sort(-1).values.diff(dim=-1)
    gap = torch.where(gaps > tol, gaps, torch.full_like(gaps, torch.inf)).amin(-1, keepdim=True)
    if ((high - low) > levels * gap + tol).any():  # too many levels for any fraction of the smallest gap
        return None
    step = torch.full_like(gap, torch.nan)
    for k in range(1, levels + 1):
        todo = step.isnan().squeeze(-1)
        if not todo.any():
            break
        candidate = gap[todo] / k
        fits = _fits(w[todo], low[todo], candidate, levels, tol[todo]) & ((high - low)[todo] <= levels * candidate + tol[todo]).squeeze(-1)
        step[todo.nonzero().squeeze(-1)[fits]] = candidate[fits]
    return None if step.isnan().any() else step


def grid_linears(model: nn.Module, group_size: int, bits: int = 4,
                 skip: tuple[str, ...] = ()) -> dict[str, RoundedWeight]:
    """The Linears (of those the recipe quantizes, minus `skip`) whose weights lie on an affine grid, by module name."""
    modules = {n.removeprefix("model."): m for n, m in model.named_modules()}
    found = {name: affine_grid(modules[name].weight, group_size, bits) for name in gptq_linears(model, group_size, skip)}
    return {name: w for name, w in found.items() if w is not None}
