"""The recipe config: flags validated on construction, schemes per target, the simulation calibration runs."""
import json

import pytest

from softfold.errors import UserError
from softfold.export.config import (Algorithm, Arithmetic, EmbeddingQuant, Folding, LinearQuant, OnnxBlockQuant,
                                    OnnxDynamicInt8, QuantConfig, QuantSim, Recipe, Target)


@pytest.mark.parametrize("target,recipe,kw,needle", [
    (Target.EXECUTORCH, Recipe.INT4, {}, "not available for --target executorch"),
    (Target.ONNX, Recipe.X8DA4W, {}, "not available for --target onnx"),
    (Target.EXECUTORCH, Recipe.X8DA4W, {"weight_bits": 2}, "XNNPACK lowers 4- and 8-bit"),
    (Target.ONNX, Recipe.INT4, {"group_size": 48}, "--group-size"),
    (Target.EXECUTORCH, Recipe.X8DA4W, {"algorithm": "hqq"}, "--algorithm for executorch must be rtn, gptq, grid"),
    (Target.EXECUTORCH, Recipe.X8DA4W, {"algorithm": "awq"}, "--algorithm must be one of rtn, gptq, hqq, grid"),
    (Target.EXECUTORCH, Recipe.X8DA8W, {"algorithm": "grid"}, "--algorithm grid keeps 4-bit source weights"),
    (Target.ONNX, Recipe.INT8, {"algorithm": "gptq"}, "--algorithm gptq rounds the weights of 8da4w"),
    (Target.ONNX, Recipe.INT4, {"algorithm": "gptq", "weight_bits": 8}, "quantizes to 4 bits only"),
    (Target.EXECUTORCH, Recipe.FP32, {"embedding_bits": 8}, "--embedding-bits quantizes the embedding"),
    (Target.ONNX, Recipe.INT8, {"embedding_bits": 4}, "--embedding-bits for onnx needs --recipe int4"),
    (Target.ONNX, Recipe.INT8, {"keep_8bit": ("lm_head",)}, "--keep-8bit applies to the 4-bit recipes"),
    (Target.EXECUTORCH, Recipe.FP32, {"keep_8bit": ("lm_head",)}, "--keep-8bit applies to the 4-bit recipes"),
    (Target.ONNX, Recipe.INT4, {"embedding_bits": 8}, "GatherBlockQuantized is 4-bit"),
    (Target.EXECUTORCH, Recipe.X8DA4W, {"offset_bits": 16}, "--offset-bits must be one of"),
    (Target.EXECUTORCH, Recipe.X8DA4W, {"offset_bits": 8, "algorithm": "gptq"}, "applies to --algorithm grid"),
    (Target.EXECUTORCH, Recipe.FP32, {"offset_bits": 8}, "the grid of --recipe 8da4w"),
    (Target.ONNX, Recipe.INT4, {"offset_bits": 8}, "applies to --target executorch"),
])
def test_bad_recipe_settings_are_user_errors(target, recipe, kw, needle):
    with pytest.raises(UserError, match=needle):
        QuantConfig(target, recipe, **kw)


def test_schemes_per_target():
    assert QuantConfig(Target.EXECUTORCH).schemes == (None, None)
    assert QuantConfig(Target.ONNX, Recipe.INT8).schemes == (OnnxDynamicInt8(), None)
    pte = QuantConfig(Target.EXECUTORCH, Recipe.X8DA4W, embedding_bits=8, keep_8bit=["lm_head"])
    assert pte.schemes == (LinearQuant(4, 32, ("lm_head",), Algorithm.GRID), EmbeddingQuant(8))
    assert QuantConfig(Target.EXECUTORCH, Recipe.X8DA8W).weights == LinearQuant(8, 0, (), Algorithm.RTN)
    onnx = QuantConfig(Target.ONNX, Recipe.INT4, embedding_bits=4, algorithm="gptq")
    assert onnx.weights == OnnxBlockQuant(4, 32, Algorithm.GPTQ, embedding_bits=4) and onnx.embedding is None


def test_grid_offsets_stay_fp32_unless_asked_and_only_the_grid_has_them():
    assert QuantConfig(Target.EXECUTORCH, Recipe.X8DA4W).weights.offset_bits == 32
    int8 = QuantConfig(Target.EXECUTORCH, Recipe.X8DA4W, offset_bits=8)
    assert int8.weights.offset_bits == 8
    with pytest.raises(UserError, match="applies to --algorithm grid"):  # round-to-nearest: no offsets
        int8.resolved(Folding.VIRTUAL_TOKENS).weights


def test_the_default_algorithm_follows_bits_and_folding():
    four_bit = QuantConfig(Target.ONNX, Recipe.INT4)
    assert four_bit.algorithm is None and four_bit.weights.algorithm is Algorithm.GRID
    assert four_bit.resolved(Folding.PREFIX_KV).algorithm is Algorithm.GRID
    assert four_bit.resolved(Folding.VIRTUAL_TOKENS).algorithm is Algorithm.RTN  # GPTQ does no better there
    assert QuantConfig(Target.ONNX, Recipe.INT4, weight_bits=8).weights.algorithm is Algorithm.RTN
    asked = QuantConfig(Target.ONNX, Recipe.INT4, algorithm=Algorithm.GPTQ)
    assert asked.resolved(Folding.VIRTUAL_TOKENS) is asked
    assert asked.rounds_by_calibration() and not QuantConfig(Target.ONNX, Recipe.INT8).rounds_by_calibration()


def test_simulation_is_the_targets_arithmetic():
    pte = QuantConfig(Target.EXECUTORCH, Recipe.X8DA4W, embedding_bits=8).simulation()
    assert pte == QuantSim(4, 32, True, (), 8, 0, Arithmetic.TORCHAO, Algorithm.GRID)
    onnx = QuantConfig(Target.ONNX, Recipe.INT4, embedding_bits=4, keep_8bit=("lm_head",)).simulation()
    assert onnx == QuantSim(4, 32, True, ("lm_head",), 4, 32, Arithmetic.MLAS, Algorithm.GRID)
    assert QuantSim.from_json(json.loads(json.dumps(onnx.to_json()))) == onnx
    with pytest.raises(UserError, match="not HQQ's"):
        QuantConfig(Target.ONNX, Recipe.INT4, algorithm="hqq").simulation()
    with pytest.raises(UserError, match="simulates weight-quantized recipes"):
        QuantConfig(Target.ONNX, Recipe.INT8).simulation()


def test_schemes_serialize_with_their_enum_values():
    """The manifest's quantization record: the algorithm as its flag's word."""
    scheme = QuantConfig(Target.EXECUTORCH, Recipe.X8DA4W).weights
    assert json.loads(json.dumps(scheme.__dict__))["algorithm"] == "grid"


def test_the_quantized_recipes_quantize_the_embedding_table_by_default():
    assert QuantConfig(Target.EXECUTORCH, Recipe.X8DA4W).embedding == EmbeddingQuant(8)
    assert QuantConfig(Target.EXECUTORCH, Recipe.X8DA8W).embedding == EmbeddingQuant(8)
    assert QuantConfig(Target.ONNX, Recipe.INT4).weights.embedding_bits == 4
    assert QuantConfig(Target.EXECUTORCH, Recipe.X8DA4W, embedding_bits=0).embedding is None  # 0: fp32, asked for
    assert QuantConfig(Target.EXECUTORCH, Recipe.FP32).embedding is None
    assert QuantConfig(Target.ONNX, Recipe.INT8).embedding_bits == 0


def test_the_ort_format_keeps_an_fp32_table_and_refuses_a_4_bit_one():
    assert QuantConfig(Target.ORT, Recipe.INT4).weights.embedding_bits == 0
    with pytest.raises(UserError, match="ORT format cannot hold"):
        QuantConfig(Target.ORT, Recipe.INT4, embedding_bits=4)
