"""Applying a recipe's schemes (export/config.py): torchao's quantize_ for ExecuTorch, ORT's quantizers for ONNX;
weights rounded by calibrate/ (GPTQ, the source's grid) are written in place of the runtime's own rounding.
"""
import ast
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from softfold.errors import UserError
from softfold.export.config import (Algorithm, EmbeddingQuant, LinearQuant, OnnxBlockQuant, OnnxDynamicInt8,
                                    OnnxStaticInt8)
from softfold.export.model import OffsetLinear


def in_layers(name: str, layers: tuple[str, ...]) -> bool:
    """Whether module `name` is one of `layers` or inside one ("layers.1" holds "layers.1.mlp.up_proj", not "layers.10")."""
    return any(name == layer or name.startswith(layer + ".") for layer in layers)


@dataclass(frozen=True)
class RoundedWeight:
    """A Linear's weights already rounded (calibrate/gptq.py, calibrate/grid.py): the integers and scales a recipe
    stores in place of its own round-to-nearest."""
    q: torch.Tensor  # int8 [out, in], within the recipe's bits
    scale: torch.Tensor  # fp32 [out, in // group]
    offset: torch.Tensor | None = None  # fp32 [out, in // group], added to every weight of its group (calibrate/grid.py)

    @property
    def group_size(self) -> int:
        return self.q.shape[1] // self.scale.shape[1]

    def dequantized(self) -> torch.Tensor:
        w = self.q.float().unflatten(1, (self.scale.shape[1], -1)) * self.scale.unsqueeze(-1)
        return (w if self.offset is None else w + self.offset.unsqueeze(-1)).flatten(1)


def _divisible(group_size: int):
    return lambda m, fqn: isinstance(m, nn.Linear) and (group_size == 0 or m.in_features % group_size == 0)


@torch.no_grad()
def quantize_executorch(model: nn.Module, linear: LinearQuant | None, embedding: EmbeddingQuant | None,
                        rounded: dict[str, RoundedWeight] | None = None) -> nn.Module:
    """torchao's quantize_ per scheme; Linears in `rounded` (GPTQ) take those integers and scales instead."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, IntxWeightOnlyConfig, quantize_
    from torchao.quantization.granularity import PerAxis, PerGroup

    def granularity(group_size: int):
        return PerAxis(0) if group_size == 0 else PerGroup(group_size)

    if linear is not None:
        config = Int8DynamicActivationIntxWeightConfig(weight_dtype=getattr(torch, f"int{linear.weight_bits}"),
                                                       weight_granularity=granularity(linear.group_size))
        divisible = _divisible(linear.group_size)
        rounded = rounded or {}
        quantize_(model, config, filter_fn=lambda m, fqn: divisible(m, fqn) and fqn not in rounded
                  and not in_layers(fqn, linear.keep_8bit))
        for name, weight in rounded.items():
            _set_intx_weight(model.get_submodule(name), weight, linear.weight_bits)
        int8 = Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8, weight_granularity=PerAxis(0))
        if linear.keep_8bit:
            quantize_(model, int8, filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and in_layers(fqn, linear.keep_8bit))
        if linear.offset_bits == 8:
            offsets = set()
            for m in list(model.modules()):  # offsets_as_linear adds a child
                if isinstance(m, OffsetLinear):
                    m.offsets_as_linear()
                    offsets.add(id(m.offsets))
            quantize_(model, int8, filter_fn=lambda m, fqn: id(m) in offsets)
    if embedding is not None:
        config = IntxWeightOnlyConfig(weight_dtype=getattr(torch, f"int{embedding.bits}"),
                                      granularity=granularity(embedding.group_size))
        quantize_(model, config, filter_fn=lambda m, fqn: isinstance(m, nn.Embedding))
    return model


def _set_intx_weight(linear: nn.Linear, weight: RoundedWeight, bits: int) -> None:
    """The Linear's weight as torchao's 8da<bits>w tensor holding exactly these integers and scales."""
    from torchao.quantization import IntxUnpackedToInt8Tensor

    linear.weight = nn.Parameter(IntxUnpackedToInt8Tensor(
        weight.q, weight.scale, torch.zeros_like(weight.scale, dtype=torch.int8), getattr(torch, f"int{bits}"),
        (1, weight.group_size), torch.float32, "int8_asym_per_token"), requires_grad=False)


def quantize_onnx(src: Path, dst: Path, scheme: OnnxBlockQuant | OnnxDynamicInt8 | OnnxStaticInt8,
                  calibration_feeds: list[dict] | None = None, rounded: dict[str, RoundedWeight] | None = None) -> None:
    """Quantize model.onnx at `src` into `dst` (weights as external data beside it). `rounded` (GPTQ, 4-bit):
    these Linears' MatMulNBits get those integers and scales in place of round-to-nearest's."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(src), load_external_data=False).graph  # node names and scopes; no weights
    not_linear = _matmuls_outside_linears(graph)
    if isinstance(scheme, OnnxStaticInt8):
        _quantize_static(src, dst, scheme, calibration_feeds or [], not_linear)
        return
    if isinstance(scheme, OnnxDynamicInt8):
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                         nodes_to_exclude=not_linear, use_external_data_format=True,
                         extra_options={"MatMulConstBOnly": True})
        _rename_external_data(dst)
        return
    from onnxruntime.quantization import matmul_nbits_quantizer as nbits

    model = onnx.load(str(src))
    kept = [node.name for node in graph.node
            if node.op_type == "MatMul" and in_layers(_module_of(node), scheme.keep_8bit)]
    # None: ORT's default block-wise round-to-nearest quantizer.
    algo = nbits.HQQWeightOnlyQuantConfig(block_size=scheme.block_size, bits=4) if scheme.algorithm is Algorithm.HQQ else None
    passes = [dict(bits=scheme.bits, algo_config=algo, nodes_to_exclude=kept + not_linear)]
    if kept:  # what the first pass left as float MatMul with constant weights: the kept layers (and the rest)
        passes.append(dict(bits=8, nodes_to_exclude=not_linear))
    if scheme.embedding_bits:
        passes.append(dict(bits=4, op_types_to_quantize=("Gather",)))
    for options in passes:
        quantizer = nbits.MatMulNBitsQuantizer(model, block_size=scheme.block_size, is_symmetric=True,
                                               accuracy_level=scheme.accuracy_level, **options)
        quantizer.process()
        model = quantizer.model.model
    if rounded:
        _write_rounded(model, graph, rounded)
    onnx.save_model(model, str(dst), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=dst.name + ".data", size_threshold=1024)


def _write_rounded(model, src_graph, rounded: dict[str, RoundedWeight]) -> None:
    """Overwrite the 4-bit MatMulNBits weights ORT's pass wrote (<weight>_Q4, <weight>_scales) with `rounded`'s:
    unsigned nibbles q + 8 (MatMulNBits' default zero point), two per byte, the first input in the low nibble."""
    from onnx import numpy_helper

    weight_of = {_module_of(node): node.input[1] for node in src_graph.node
                 if node.op_type == "MatMul" and not _is_offset(node)}
    initializers = {t.name: t for t in model.graph.initializer}
    for name, weight in rounded.items():
        packed_t, scales_t = initializers[weight_of[name] + "_Q4"], initializers[weight_of[name] + "_scales"]
        nibbles = (weight.q.to(torch.int16) + 8).to(torch.uint8).numpy()
        packed = (nibbles[:, 0::2] | (nibbles[:, 1::2] << 4)).reshape(tuple(packed_t.dims))
        packed_t.CopyFrom(numpy_helper.from_array(packed, packed_t.name))
        scales = weight.scale.numpy().astype(numpy_helper.to_array(scales_t).dtype).reshape(tuple(scales_t.dims))
        scales_t.CopyFrom(numpy_helper.from_array(scales, scales_t.name))


def _quantize_static(src: Path, dst: Path, scheme: OnnxStaticInt8, feeds: list[dict],
                     exclude: list[str]) -> None:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Feeds(CalibrationDataReader):
        def __init__(self):
            self.pending = iter(feeds)

        def get_next(self):
            return next(self.pending, None)

    if not feeds:
        raise UserError("int8-static needs calibration prompts, got none")
    quantize_static(src, dst, Feeds(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"], per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, use_external_data_format=True, nodes_to_exclude=exclude,
                    extra_options={"MatMulConstBOnly": True})
    _rename_external_data(dst)


def _matmuls_outside_linears(graph) -> list[str]:
    """MatMuls that are not Linear weights, never quantized: attention's (none in today's graph, whose attention is
    one fused op) and the fp32 per-block offsets of an `OffsetLinear`."""
    return [node.name for node in graph.node if node.op_type == "MatMul" and (not _module_of(node) or _is_offset(node))]


def _is_offset(node) -> bool:
    return node.input[1].endswith(".block_offset")


def _module_of(node) -> str:
    """The folded model's module name that torch.onnx recorded for a node ("lm_head", "layers.0.mlp.up_proj")."""
    scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "[]")
    names = [n for n in ast.literal_eval(scopes) if n.startswith("model.")]
    return names[-1].removeprefix("model.") if names else ""


def _rename_external_data(path: Path) -> None:
    """quantize_dynamic names its external data file after a temp path; store it as <model>.data."""
    import onnx

    model = onnx.load(str(path))
    for stale in path.parent.glob("*.data"):
        if stale.name != path.name + ".data":
            stale.unlink()
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + ".data", size_threshold=1024)
