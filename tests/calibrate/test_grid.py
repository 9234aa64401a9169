"""Source weights already on a 4-bit grid (GGUF Q4_1) keep it: recovered exactly, computed exactly by OffsetLinear,
and the bundles holding it (`--algorithm grid`) far closer to fp32 than any rounding."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MAX_CONTEXT, PROMPTS
from executorch.exir._serialize._program import deserialize_pte_binary
from gguf import GGMLQuantizationType as Q
from gguf import quants
from tiny import make_lora_dir, snap_to_q4_1

from softfold.calibrate.grid import affine_grid, grid_linears
from softfold.export.config import Algorithm, QuantConfig, Recipe, Target
from softfold.export.fold import build_folded_model
from softfold.export.model import OffsetLinear, with_offsets
from softfold.inputs.base_model import read_model
from softfold.inputs.lora import load_lora, merged
from softfold.inputs.soft_prompt import load_soft_prompt
from softfold.parity.gate import GateConfig
from softfold.pipeline.options import ExportOptions
from softfold.pipeline.stages import export_bundle


@pytest.fixture(scope="module")
def q4_1_model(tiny_models, tmp_path_factory):
    return snap_to_q4_1(tiny_models["llama"], tmp_path_factory.mktemp("q4_1") / "llama")


def _q4_1(weight: torch.Tensor) -> torch.Tensor:
    """GGUF's Q4_1 rounding, blocks of 32: 16 levels from each block's min to its max, d and m in fp16."""
    w = weight.reshape(weight.shape[0], -1, 32)
    low = w.amin(-1, keepdim=True).half().float()
    step = ((w.amax(-1, keepdim=True) - w.amin(-1, keepdim=True)) / 15).half().float()
    return (((w - low) / step).round().clamp(0, 15) * step + low).flatten(1)


def test_a_q4_1_weight_is_recovered_exactly_as_a_symmetric_grid_plus_block_offsets():
    weight = _q4_1(torch.randn(48, 96, generator=torch.Generator().manual_seed(0)))
    grid = affine_grid(weight, 32)
    assert grid.q.dtype == torch.int8 and grid.q.min() == -8 and grid.q.max() == 7
    assert grid.scale.shape == grid.offset.shape == (48, 3)
    torch.testing.assert_close(grid.dequantized(), weight, rtol=0, atol=1e-6)


def test_a_q4_k_weight_using_only_some_levels_is_recovered_exactly():
    # Q4_K: 6-bit scales and minimums searched per sub-block of 32, so a block need not reach level 0 or 15, and
    # some use every other level only
    g = torch.Generator().manual_seed(1)
    q = torch.randint(2, 13, (48, 3, 32), generator=g).float()
    q[0] = 2 * torch.randint(0, 6, (3, 32), generator=g)  # levels 0, 2, ..., 10: the smallest gap is two steps
    q[1, :, :16], q[1, :, 16:] = 3, 5  # two values: the gap is the step times two
    d = torch.rand(48, 3, 1, generator=g).half().float() / 8
    m = torch.rand(48, 3, 1, generator=g).half().float() / 4
    weight = (d * q - m).flatten(1)
    grid = affine_grid(weight, 32)
    torch.testing.assert_close(grid.dequantized(), weight, rtol=0, atol=1e-6)
    assert grid.q.min() >= -8 and grid.q.max() <= 7
    assert affine_grid(_q4_1(torch.randn(48, 96, generator=g)), 16) is not None  # half a Q4_1 block: a grid too


def _q4_k_blocks(rows: int, seed: int) -> np.ndarray:
    """Random Q4_K super-blocks (256 weights in 144 bytes: fp16 d and dmin, 6-bit scales and minimums of eight
    sub-blocks of 32, 4-bit levels), as llama.cpp stores them."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (rows, 144), dtype=np.uint8)
    blocks[:, :4] = np.stack([rng.uniform(1e-4, 1e-3, rows), rng.uniform(1e-4, 1e-3, rows)], 1).astype(np.float16) \
        .view(np.uint8)
    return blocks


def test_gguf_blocks_on_a_4_bit_grid_are_recovered_exactly_and_wider_ones_refused():
    weights = {kind: torch.from_numpy(quants.dequantize(_q4_k_blocks(48, 0), kind) if kind is Q.Q4_K else
                                      quants.dequantize(quants.quantize(np.random.default_rng(1).standard_normal(
                                          (48, 256), dtype=np.float32), kind), kind))
               for kind in (Q.Q4_K, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q8_0)}
    for kind in (Q.Q4_K, Q.Q4_0, Q.Q4_1):  # gguf's own dequantization, then split exactly
        torch.testing.assert_close(affine_grid(weights[kind], 32).dequantized(), weights[kind], rtol=0, atol=1e-7)
    assert affine_grid(weights[Q.Q5_0], 32) is None and affine_grid(weights[Q.Q8_0], 32) is None


def test_weights_off_a_grid_are_not_taken_for_one():
    weight = torch.randn(48, 96, generator=torch.Generator().manual_seed(0))
    assert affine_grid(weight, 32) is None  # random floats
    assert affine_grid(_q4_1(weight)[:, :80], 32) is None  # the group does not divide the inputs
    q5 = torch.randint(-16, 16, (48, 3, 32), generator=torch.Generator().manual_seed(2)).float()
    assert affine_grid((q5 * 0.01).flatten(1), 32) is None  # Q5_0: 32 levels


def test_offset_linears_compute_the_source_weights(q4_1_model, soft_prompts, tiny_models):
    base = read_model(q4_1_model).load()
    grids = grid_linears(base.model, 32)
    assert len(grids) == 2 * 7 + 1  # every Linear of the snapped model, the LM head included
    assert grid_linears(read_model(tiny_models["llama"]).load().model, 32) == {}  # random weights: none
    soft_prompt = load_soft_prompt(soft_prompts[("llama", 16)], base.config.hidden_size)
    folded = build_folded_model(base.model, soft_prompt.embeddings, MAX_CONTEXT)
    tokens = torch.tensor([[5, 9, 17, 33, 2]])
    before = folded(tokens, torch.tensor([0]))
    with_offsets(folded, grids)
    assert isinstance(folded.layers[1].mlp.down_proj, OffsetLinear)
    torch.testing.assert_close(folded(tokens, torch.tensor([0])), before, rtol=0, atol=1e-4)


def test_a_merged_lora_takes_its_linears_off_the_grid(q4_1_model, tmp_path):
    """`export --adapter` with --algorithm grid: a merged Linear (W + alpha / r B A) is off the GGUF's grid, so GPTQ
    rounds it (calibrate/rounding.py); those the LoRA left alone keep the grid exactly."""
    base = read_model(q4_1_model).load()
    lora = make_lora_dir(tmp_path / "lora", q4_1_model, targets=["q_proj", "v_proj"])
    kept = grid_linears(merged(base, load_lora(lora, base.config)).model, 32)
    assert len(grid_linears(base.model, 32)) == 2 * 7 + 1 and len(kept) == 2 * 5 + 1
    assert set(grid_linears(base.model, 32)) - set(kept) == {f"layers.{i}.self_attn.{p}" for i in range(2)
                                                             for p in ("q_proj", "v_proj")}


@pytest.mark.parametrize("target,recipe", [(Target.EXECUTORCH, Recipe.X8DA4W), (Target.ONNX, Recipe.INT4)])
def test_grid_bundles_are_far_closer_to_fp32_than_gptq(q4_1_model, soft_prompts, tmp_path, target, recipe):
    def export(algorithm: Algorithm | None):
        return export_bundle(ExportOptions(model=q4_1_model, soft_prompt=soft_prompts[("llama", 16)],
                                           out=tmp_path / str(algorithm),
                                           quant=QuantConfig(target, recipe, algorithm=algorithm, embedding_bits=0),
                                           max_context=MAX_CONTEXT, gate=GateConfig(PROMPTS)))

    grid, gptq = export(None), export(Algorithm.GPTQ)  # grid: the 4-bit recipes' default
    # measured: .pte 0.0014 vs 0.238, ONNX 0.0012 vs 0.241 (what is left: the int8 activations)
    assert grid.metrics["mean_kl"] < 0.05 * gptq.metrics["mean_kl"]
    assert grid.passed, grid.failures
    quantization = json.loads((tmp_path / "None" / "manifest.json").read_text())["quantization"]
    assert quantization["LinearQuant" if target is Target.EXECUTORCH else "OnnxBlockQuant"]["algorithm"] == "grid"
    linears = {name: t for name, t in quantization["tensors"].items() if name != "embed_tokens"}
    assert len(linears) == 2 * 7 + 1 and all(t == {"bits": 4, "rounding": "grid"} for t in linears.values())
    if target is Target.EXECUTORCH:  # the offsets run inside XNNPACK: no operator call the GPTQ program lacks
        assert program_ops(tmp_path / "None" / "model.pte") == program_ops(tmp_path / str(Algorithm.GPTQ) / "model.pte")


def program_ops(pte: Path) -> Counter:
    """How many times the .pte's forward calls each operator outside a delegate (DELEGATE: the delegate calls)."""
    program = deserialize_pte_binary(pte.read_bytes()).program
    plan = next(p for p in program.execution_plan if p.name == "forward")
    names = [op.name for op in plan.operators]
    args = [i.instr_args for chain in plan.chains for i in chain.instructions]
    return Counter(names[a.op_index] if hasattr(a, "op_index") else "DELEGATE" for a in args
                   if hasattr(a, "op_index") or hasattr(a, "delegate_index"))


def test_int8_offsets_keep_the_grid_bundle_close_to_fp32_inside_xnnpack(q4_1_model, soft_prompts, tmp_path):
    """`--offset-bits 8`: the offsets as an 8da8w Linear over the block sums, a quarter of the bytes; the int8
    activations and per-channel weights add little to the gate's KL and no operator outside the delegate."""
    def export(offset_bits: int):
        return export_bundle(ExportOptions(model=q4_1_model, soft_prompt=soft_prompts[("llama", 16)],
                                           out=tmp_path / str(offset_bits),
                                           quant=QuantConfig(Target.EXECUTORCH, Recipe.X8DA4W, embedding_bits=0,
                                                             offset_bits=offset_bits),
                                           max_context=MAX_CONTEXT, gate=GateConfig(PROMPTS)))

    exact, int8 = export(32), export(8)
    assert int8.passed, int8.failures
    assert int8.metrics["mean_kl"] < 1.2 * exact.metrics["mean_kl"]  # measured: 0.00152 vs 0.00141
    assert program_ops(tmp_path / "8" / "model.pte") == program_ops(tmp_path / "32" / "model.pte")
    quantization = json.loads((tmp_path / "8" / "manifest.json").read_text())["quantization"]
    assert quantization["LinearQuant"]["offset_bits"] == 8
