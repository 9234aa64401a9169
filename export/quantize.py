"""Quantization recipes, one documented dataclass per scheme (torchao style).

The soft prompt's prefix K/V are buffers, never weights of a Linear/MatMul, so no scheme here
touches them: the soft prompt stays fp32 in every recipe.
"""
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import torch
from torch import nn

from softfold.errors import UserError


class Recipe(str, Enum):
    FP32 = "fp32"
    X8DA4W = "8da4w"  # ExecuTorch: int8 dynamic activations, int4 group-wise weights
    X8DA8W = "8da8w"  # ExecuTorch: int8 dynamic activations, int8 per-channel weights
    INT4 = "int4"  # ONNX: MatMulNBits 4-bit block-wise weights
    INT8 = "int8"  # ONNX: int8 dynamic (MatMulInteger)


EXECUTORCH_RECIPES = (Recipe.FP32, Recipe.X8DA4W, Recipe.X8DA8W)
ONNX_RECIPES = (Recipe.FP32, Recipe.INT4, Recipe.INT8)


def _check(value: int, allowed: tuple[int, ...], what: str) -> None:
    if value not in allowed:
        raise UserError(f"{what} must be one of {allowed}, got {value}")


@dataclass(frozen=True)
class LinearQuant:
    """Every Linear: int8 dynamic activations x intN weights (torchao Int8DynamicActivationIntxWeightConfig)."""
    weight_bits: int = 4
    group_size: int = 32  # 0: one scale per output channel

    def __post_init__(self):
        _check(self.weight_bits, (4, 8), "--weight-bits for executorch (XNNPACK lowers 4- and 8-bit weights)")
        _check(self.group_size, (0, 16, 32, 64, 128, 256), "--group-size")


@dataclass(frozen=True)
class EmbeddingQuant:
    """The token embedding table, weight-only (torchao IntxWeightOnlyConfig), as quantized embedding ops."""
    bits: int = 8
    group_size: int = 0

    def __post_init__(self):
        _check(self.bits, (4, 8), "--embedding-bits")


@dataclass(frozen=True)
class OnnxBlockQuant:
    """ONNX MatMul weights, block-wise, as MatMulNBits (ORT's quantizer: round-to-nearest or HQQ)."""
    bits: int = 4
    block_size: int = 32
    algorithm: str = "rtn"  # rtn | hqq
    accuracy_level: int = 4  # MatMulNBits compute type: 4 = int8 activations (fast on CPU)

    def __post_init__(self):
        _check(self.bits, (2, 4, 8), "--weight-bits for onnx")
        _check(self.block_size, (16, 32, 64, 128, 256), "--group-size")
        if self.algorithm not in ("rtn", "hqq"):
            raise UserError(f"--algorithm must be rtn or hqq, got {self.algorithm!r}")
        if self.algorithm == "hqq" and self.bits != 4:
            raise UserError(f"--algorithm hqq quantizes to 4 bits only, got --weight-bits {self.bits}")


@dataclass(frozen=True)
class OnnxDynamicInt8:
    """ONNX MatMul weights int8 per channel, activations quantized at run time (MatMulInteger)."""


def _divisible(group_size: int):
    return lambda m, fqn: isinstance(m, nn.Linear) and (group_size == 0 or m.in_features % group_size == 0)


@torch.no_grad()
def quantize_executorch(model: nn.Module, linear: LinearQuant | None, embedding: EmbeddingQuant | None) -> nn.Module:
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, IntxWeightOnlyConfig, quantize_
    from torchao.quantization.granularity import PerAxis, PerGroup

    def granularity(group_size: int):
        return PerAxis(0) if group_size == 0 else PerGroup(group_size)

    if linear is not None:
        config = Int8DynamicActivationIntxWeightConfig(weight_dtype=getattr(torch, f"int{linear.weight_bits}"),
                                                       weight_granularity=granularity(linear.group_size))
        quantize_(model, config, filter_fn=_divisible(linear.group_size))
    if embedding is not None:
        config = IntxWeightOnlyConfig(weight_dtype=getattr(torch, f"int{embedding.bits}"),
                                      granularity=granularity(embedding.group_size))
        quantize_(model, config, filter_fn=lambda m, fqn: isinstance(m, nn.Embedding))
    return model


def quantize_onnx(src: Path, dst: Path, scheme: OnnxBlockQuant | OnnxDynamicInt8) -> None:
    """Quantize model.onnx at `src` into `dst` (weights as external data beside it)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if isinstance(scheme, OnnxDynamicInt8):
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         use_external_data_format=True, extra_options={"MatMulConstBOnly": True})
        _rename_external_data(dst)
        return
    from onnxruntime.quantization import matmul_nbits_quantizer as nbits

    # None: ORT's default block-wise round-to-nearest quantizer.
    algo = nbits.HQQWeightOnlyQuantConfig(block_size=scheme.block_size, bits=4) if scheme.algorithm == "hqq" else None
    quantizer = nbits.MatMulNBitsQuantizer(onnx.load(str(src)), bits=scheme.bits, block_size=scheme.block_size,
                                           is_symmetric=True, accuracy_level=scheme.accuracy_level, algo_config=algo)
    quantizer.process()
    onnx.save_model(quantizer.model.model, str(dst), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=dst.name + ".data", size_threshold=1024)


def _rename_external_data(path: Path) -> None:
    """quantize_dynamic names its external data file after a temp path; store it as <model>.data."""
    import onnx

    model = onnx.load(str(path))
    for stale in path.parent.glob("*.data"):
        if stale.name != path.name + ".data":
            stale.unlink()
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + ".data", size_threshold=1024)
