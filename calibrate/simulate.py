"""A recipe's arithmetic simulated in PyTorch: weights rounded as each runtime rounds them, int8 activations where
the runtime quantizes them, the embedding table's rounding (`QuantSim`). Used to measure (`sensitivity.py`),
calibrate (`prefix.py`) and train through (`softfold distill --quantization-aware`) a quantized bundle.
"""
from contextlib import ExitStack, contextmanager

import torch
from torch import nn

from softfold.export.config import Arithmetic, QuantSim
from softfold.export.quantize import in_layers


def fake_quantize_weight(weight: torch.Tensor, bits: int, group_size: int,
                         arithmetic: Arithmetic = Arithmetic.TORCHAO) -> torch.Tensor:
    """Symmetric round-to-nearest per group of `group_size` inputs (0: per output channel), back to float."""
    out_features, in_features = weight.shape
    group = in_features if group_size == 0 else group_size
    w = weight.float().reshape(out_features, in_features // group, group)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    # Each runtime's exact rounding: on a GGUF-dequantized model many weights sit on ties, and a group's
    # extreme weight always does under torchao's grid (|w| / scale = 7.5)
    if arithmetic is not Arithmetic.TORCHAO:  # the extreme lands on qmin
        hi, lo = w.amax(-1, keepdim=True), w.amin(-1, keepdim=True)
        scale = torch.where(hi.abs() > lo.abs(), hi, lo) / qmin
        scale = torch.where(scale == 0, torch.full_like(scale, 1e-12), scale)
        # MLAS rounds after its +8 offset: half up
        q = torch.floor(w / scale + 0.5) if arithmetic is Arithmetic.MLAS else (w / scale).round()
    else:  # torchao's quantize_affine: round-half-even of w * (1 / scale)
        scale = w.abs().amax(-1, keepdim=True).clamp_min(1e-12) / ((qmax - qmin) / 2)
        q = (w * (1.0 / scale)).round()
    return (q.clamp(qmin, qmax) * scale).reshape(out_features, in_features).to(weight.dtype)


def fake_quantize_activation(x: torch.Tensor, block: int = 0) -> torch.Tensor:
    """int8, back to float: asymmetric per token (the last dimension), or symmetric per `block` inputs
    (MLAS's int8 compute for MatMulNBits, accuracy level 4).

    Gradients pass straight through (the rounding's own gradient is zero almost everywhere), so a soft
    prompt can be trained through the quantized model (`softfold distill --quantization-aware`).
    """
    if block:
        xb = x.reshape(*x.shape[:-1], x.shape[-1] // block, block)
        scale = (xb.abs().amax(-1, keepdim=True) / 127).clamp_min(1e-12)
        q = ((xb / scale).round().clamp(-127, 127) * scale).reshape(x.shape)
    else:
        lo, hi = x.amin(-1, keepdim=True).clamp_max(0), x.amax(-1, keepdim=True).clamp_min(0)
        scale = ((hi - lo) / 255).clamp_min(1e-12)
        zero = (-128 - lo / scale).round()
        q = ((x / scale + zero).round().clamp(-128, 127) - zero) * scale
    return q if not x.requires_grad else x + (q - x).detach()


@contextmanager
def quantized(model: nn.Module, layers: tuple[str, ...], bits: int, group_size: int, int8_activations: bool = True,
              arithmetic: Arithmetic = Arithmetic.TORCHAO, rounded: dict[str, torch.Tensor] | None = None):
    """Linears inside `layers` (names without the HF "model." prefix) fake-quantized; restored on exit.
    `rounded`: dequantized weights by name (GPTQ's) in place of round-to-nearest."""
    rounded = rounded or {}
    saved, hooks = [], []
    for name, module in model.named_modules():
        name = name.removeprefix("model.")
        if isinstance(module, nn.Linear) and in_layers(name, layers):
            if group_size and module.in_features % group_size:
                continue  # as the recipes do: a Linear the group does not divide stays float
            saved.append((module, module.weight))
            # a new Parameter, so a tied embedding table keeps its fp32 values
            weight = rounded[name] if name in rounded else \
                fake_quantize_weight(module.weight.detach(), bits, group_size, arithmetic)
            module.weight = nn.Parameter(weight, requires_grad=False)
            block = (group_size or module.in_features) if arithmetic is Arithmetic.MLAS else 0
            if int8_activations:
                hooks.append(module.register_forward_pre_hook(
                    lambda m, args, block=block: (fake_quantize_activation(args[0], block),)))
    try:
        yield
    finally:
        for module, weight in saved:
            module.weight = weight
        for hook in hooks:
            hook.remove()


def layer_names(model: nn.Module) -> list[str]:
    return [f"layers.{i}" for i in range(model.config.num_hidden_layers)] + ["lm_head"]


@contextmanager
def simulated(model: nn.Module, sim: QuantSim, rounded: dict[str, torch.Tensor] | None = None):
    """The HF model (no PEFT wrapper) computing with the recipe's rounding; restored on exit. `rounded`:
    the dequantized GPTQ weights by name, for a gptq recipe."""
    names = tuple(n for n in layer_names(model) if not in_layers(n, sim.keep_8bit))
    with ExitStack() as stack:
        stack.enter_context(quantized(model, names, sim.weight_bits, sim.group_size, sim.int8_activations,
                                      sim.arithmetic, rounded))
        if sim.keep_8bit:  # 8-bit per channel (MatMulNBits: blocks of group_size)
            group = sim.group_size if sim.arithmetic is Arithmetic.MLAS else 0
            stack.enter_context(quantized(model, sim.keep_8bit, 8, group, sim.int8_activations, sim.arithmetic))
        if sim.embedding_bits:
            stack.enter_context(_quantized_embedding(model, sim))
        yield


@contextmanager
def _quantized_embedding(model: nn.Module, sim: QuantSim):
    table = model.get_input_embeddings()
    saved = table.weight
    # a new Parameter: a tied LM head keeps its own (separately simulated) weight
    arithmetic = Arithmetic.ORT_NUMPY if sim.arithmetic is Arithmetic.MLAS else sim.arithmetic
    table.weight = nn.Parameter(fake_quantize_weight(saved.detach(), sim.embedding_bits, sim.embedding_group,
                                                     arithmetic), requires_grad=False)
    try:
        yield
    finally:
        table.weight = saved
