"""GPTQ rounding: the recipe's grid, the error it removes, its calibration activations, and the bundles holding it."""
import numpy as np
import pytest
import torch
from conftest import MAX_CONTEXT

from softfold.calibrate.gptq import GPTQConfig, gptq, gptq_linears, gptq_round, input_hessians
from softfold.calibrate.simulate import fake_quantize_weight
from softfold.export.config import Algorithm, LinearQuant, QuantConfig, QuantSim, Recipe, Target
from softfold.export.fold import build_folded_model
from softfold.export.quantize import RoundedWeight, quantize_executorch
from softfold.inputs.base_model import read_model
from softfold.inputs.chat_template import chat_ids
from softfold.inputs.soft_prompt import load_soft_prompt
from softfold.reference.greedy import prefix_cache


def _correlated_inputs(tokens: int, features: int) -> torch.Tensor:
    """Activations whose features share a few directions, as a transformer's do: H = X^T X is far from diagonal."""
    gen = torch.Generator().manual_seed(0)
    return torch.randn(tokens, 8, generator=gen) @ torch.randn(8, features, generator=gen) \
        + 0.1 * torch.randn(tokens, features, generator=gen)


def test_with_no_correlation_gptq_is_round_to_nearest():
    """H = I: no other column can absorb an error, so every weight rounds to nearest on torchao's grid."""
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(1))
    rounded = gptq(w, torch.eye(64), bits=4, group_size=32)
    assert rounded.q.dtype == torch.int8 and rounded.q.min() >= -8 and rounded.q.max() <= 7
    torch.testing.assert_close(rounded.dequantized(), fake_quantize_weight(w, 4, 32), rtol=0, atol=1e-6)


@pytest.mark.parametrize("bits,group_size", [(4, 32), (4, 0), (8, 0)])
def test_gptq_keeps_the_layer_outputs_closer_than_round_to_nearest(bits, group_size):
    w = torch.randn(32, 128, generator=torch.Generator().manual_seed(2))
    x = _correlated_inputs(512, 128)
    rounded = gptq(w, x.T.double() @ x.double(), bits, group_size)
    error = ((x @ (rounded.dequantized() - w).T).norm() / (x @ (fake_quantize_weight(w, bits, group_size) - w).T).norm())
    assert error < 0.5  # measured 0.11 / 0.11 / 0.11
    assert rounded.scale.shape == (32, 128 // (group_size or 128))


def test_activations_are_collected_without_the_padding(tiny_models, soft_prompts):
    base = read_model(tiny_models["llama"]).load()
    kv = prefix_cache(base.model, load_soft_prompt(soft_prompts[("llama", 16)], base.config.hidden_size).embeddings)
    prompts = [chat_ids(base.tokenizer, p) for p in ("Hi", "Tell me a story about the sea, in three lines.", "Why?")]
    names = gptq_linears(base.model, 32)
    assert "lm_head" in names and "layers.0.mlp.down_proj" in names
    one_by_one, batched = (input_hessians(base.model, kv, prompts, names, b) for b in (1, 3))
    for name in names:
        # fp32 sums differ within a batch by ~1e-6 of the largest sum; a padding row would add whole squared activations
        scale = float(one_by_one[name].abs().max())
        torch.testing.assert_close(batched[name], one_by_one[name], rtol=1e-5, atol=1e-5 * scale)
    attention, mlp = "layers.0.self_attn.", "layers.0.mlp."
    assert batched[attention + "q_proj"] is batched[attention + "v_proj"] is not batched[attention + "o_proj"]
    assert batched[mlp + "gate_proj"] is batched[mlp + "up_proj"] is not batched[mlp + "down_proj"]
    assert all(float(h.trace()) > 0 for h in batched.values())


def test_virtual_tokens_join_the_sums_once_per_prompt(tiny_models, soft_prompts):
    """A virtual-token bundle computes the soft prompt's positions with the rounded weights: their inputs count
    as often as the runtime computes them (once per prompt); prefix-kv bundles hold them as fp32 K/V."""
    base = read_model(tiny_models["llama"]).load()
    embeddings = load_soft_prompt(soft_prompts[("llama", 16)], base.config.hidden_size).embeddings
    kv = prefix_cache(base.model, embeddings)
    prompts = [chat_ids(base.tokenizer, p) for p in ("Hi", "Why?", "Name a color.")]
    names = gptq_linears(base.model, 32)
    plain = input_hessians(base.model, kv, prompts, names, 2)
    virtual = input_hessians(base.model, kv, prompts, names, 2, prefix=embeddings)
    inputs = {}
    hook = base.model.model.layers[0].mlp.down_proj.register_forward_pre_hook(
        lambda m, args: inputs.update(x=args[0][0].double()))
    base.model(inputs_embeds=embeddings.unsqueeze(0))
    hook.remove()
    x = inputs["x"]
    torch.testing.assert_close(virtual["layers.0.mlp.down_proj"], plain["layers.0.mlp.down_proj"] + 3 * x.T @ x,
                               rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(virtual["lm_head"], plain["lm_head"])  # prefill reads no logits at the prefix


def test_without_a_soft_prompt_the_sums_are_the_prompts_alone(tiny_models):
    """A bundle of a merged LoRA alone: no prefix, an empty cache; GPTQ still rounds every Linear."""
    base = read_model(tiny_models["llama"]).load()
    prompts = [chat_ids(base.tokenizer, p) for p in ("Hi", "Tell me a story about the sea.")]
    names = gptq_linears(base.model, 32)
    sums = input_hessians(base.model, [], prompts, names, 2)
    inputs = {"layers.1.mlp.down_proj": [], "lm_head": []}  # the head's: taken from the decoder, without logits
    hooks = [base.model.get_submodule(f"model.{n}" if n.startswith("layers") else n).register_forward_pre_hook(
        lambda m, args, seen=seen: seen.append(args[0][0].double())) for n, seen in inputs.items()]
    for ids in prompts:
        base.model(input_ids=torch.tensor([ids]))
    for hook in hooks:
        hook.remove()
    for name, seen in inputs.items():
        torch.testing.assert_close(sums[name], sum(x.T @ x for x in seen), rtol=1e-5, atol=1e-4)
    weights = gptq_round(base, None, 4, 32, config=GPTQConfig(prompts_per_file=2))
    assert set(weights) == set(names)


@pytest.fixture(scope="module")
def rounded(tiny_models, soft_prompts):
    base = read_model(tiny_models["llama"]).load()
    prompt = load_soft_prompt(soft_prompts[("llama", 16)], base.config.hidden_size)
    return base, prompt, gptq_round(base, prompt, 4, 32, skip=("lm_head",))


def test_gptq_round_is_deterministic_and_skips_the_8_bit_layers(rounded):
    base, prompt, weights = rounded
    assert "lm_head" not in weights and "layers.1.self_attn.q_proj" in weights
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # calibrate-prefix uses every core, export one: the integers must not care
    try:
        again = gptq_round(base, prompt, 4, 32, skip=("lm_head",))
        assert torch.get_num_threads() == 2  # restored after its single-threaded work
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(again[n].q, w.q) and torch.equal(again[n].scale, w.scale) for n, w in weights.items())


def test_the_pte_weights_hold_gptqs_integers(rounded):
    """quantize_executorch stores the given integers and scales as torchao's 8da4w tensor, unchanged."""
    base, prompt, weights = rounded
    folded = build_folded_model(base.model, prompt.embeddings, MAX_CONTEXT)
    quantize_executorch(folded, LinearQuant(4, 32, ("lm_head",), "gptq"), None, weights)
    for name, w in weights.items():
        tensor = folded.get_submodule(name).weight
        assert torch.equal(tensor.qdata, w.q) and torch.equal(tensor.scale, w.scale)
        torch.testing.assert_close(tensor.dequantize(), w.dequantized())
    assert folded.lm_head.weight.qdata.dtype == torch.int8 and "int8" in str(folded.lm_head.weight.target_dtype)


def test_onnx_packing_is_matmulnbits_own():
    """RTN integers written by `_write_rounded` are byte-for-byte what ORT's own MatMulNBits quantizer packs."""
    import onnx
    from onnx import helper, numpy_helper
    from onnxruntime.capi._pybind_state import quantize_matmul_4bits

    from softfold.export.quantize import _write_rounded

    n, k, block = 8, 64, 32
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(3))
    packed, scales = np.zeros((n, k // block, block // 2), np.uint8), np.zeros(n * k // block, np.float32)
    quantize_matmul_4bits(packed, np.ascontiguousarray(w.T.numpy()), scales, np.zeros(n, np.uint8), block, n, k, True)
    levels = np.stack([packed & 0xF, packed >> 4], -1).reshape(n, k).astype(np.int8) - 8
    ours = RoundedWeight(torch.from_numpy(levels), torch.from_numpy(scales.reshape(n, k // block)))
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")
    node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'model.lm_head']")
    src = helper.make_graph([node], "g", [], [], [numpy_helper.from_array(w.T.numpy(), "w")])
    model = helper.make_model(helper.make_graph([], "q", [], [], [
        numpy_helper.from_array(np.zeros_like(packed), "w_Q4"), numpy_helper.from_array(np.zeros_like(scales), "w_scales")]))
    _write_rounded(model, src, {"lm_head": ours})
    written = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert np.array_equal(written["w_Q4"], packed) and np.array_equal(written["w_scales"], scales)
    assert isinstance(model, onnx.ModelProto)


def test_a_gptq_prefix_is_its_own_recipe():
    rtn = QuantConfig(Target.EXECUTORCH, Recipe.X8DA4W, algorithm=Algorithm.RTN).simulation()
    gptq_sim = QuantConfig(Target.EXECUTORCH, Recipe.X8DA4W, algorithm=Algorithm.GPTQ).simulation()
    assert rtn != gptq_sim and gptq_sim.algorithm is Algorithm.GPTQ
    old = {k: v for k, v in rtn.to_json().items() if k != "algorithm"}  # files written before GPTQ existed
    assert QuantSim.from_json(old) == rtn and QuantSim.from_json(gptq_sim.to_json()) == gptq_sim

