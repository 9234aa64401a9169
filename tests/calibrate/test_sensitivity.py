"""The sensitivity report on a tiny model: simulated quantization arithmetic, ranking, restoring weights."""
import pytest
import torch

from softfold.calibrate.prompts import calibration_set
from softfold.calibrate.sensitivity import (Arithmetic, fake_quantize_activation, fake_quantize_weight, quantized,
                                           sensitivity)
from softfold.load import load_base
from softfold.reference import Reference


def test_weight_rounding_by_hand():
    w = torch.tensor([[0.0, 0.5, -1.0, 1.5], [3.0, -3.0, 0.3, 0.0]])
    # 4 bits, groups of 2: scale = max|w| / 7.5, levels clamped to [-8, 7]
    q = fake_quantize_weight(w, bits=4, group_size=2)
    s = torch.tensor([0.5, 1.5, 3.0, 0.3]) / 7.5
    expected = (w.reshape(2, 2, 2) / s.reshape(2, 2, 1)).round().clamp(-8, 7) * s.reshape(2, 2, 1)
    torch.testing.assert_close(q, expected.reshape(2, 4))
    assert q[0, 0] == 0 and len(torch.unique(fake_quantize_weight(torch.randn(1, 64), 4, 64))) <= 16


def test_mlas_weight_rounding_is_onnxruntimes():
    """ORT's own symmetric block quantizer (the extreme value lands on -8), dequantized, block by block."""
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantizer

    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    ours = fake_quantize_weight(w, bits=4, group_size=32, arithmetic=Arithmetic.MLAS)
    weight_kn = w.T.numpy()[None]  # MatMul weight [K, N], blocks along K
    for start in (0, 32):
        q, scale = DefaultWeightOnlyQuantizer.quant_slice_symmetric(weight_kn[:, start:start + 32])
        torch.testing.assert_close(ours[:, start:start + 32], torch.from_numpy(q * scale)[0].T.float())
    assert not torch.equal(ours, fake_quantize_weight(w, bits=4, group_size=32))  # torchao's grid differs


def test_mlas_activation_rounding_is_symmetric_per_block():
    x = torch.randn(3, 64)
    q = fake_quantize_activation(x, block=32)
    for block in (q[:, :32], q[:, 32:]):
        assert all(len(torch.unique(row)) <= 255 for row in block)
    steps = x.reshape(3, 2, 32).abs().amax(-1) / 127
    assert ((q - x).abs().reshape(3, 2, 32) <= steps.unsqueeze(-1) / 2 + 1e-6).all()  # within half a step


def test_activation_rounding_keeps_256_levels_per_token():
    x = torch.randn(3, 1000)
    q = fake_quantize_activation(x)
    assert all(len(torch.unique(row)) <= 256 for row in q)
    assert (q - x).abs().max() <= (x.amax(-1) - x.amin(-1)).max() / 255  # within one step


@pytest.fixture(scope="module")
def reference(tiny_models, soft_prompts):
    base = load_base(tiny_models["llama"])
    with torch.no_grad():  # an outlier input channel in layers.1, harmless in fp32 (its input is always 0),
        block = base.model.model.layers[1]  # but 4-bit groups holding it round most other weights to 0,
        block.post_attention_layernorm.weight[0] = 0  # while 8 bits per channel still resolve them
        outlier = 50 * block.mlp.gate_proj.weight.std()
        block.mlp.gate_proj.weight[:, 0] = outlier
        block.mlp.up_proj.weight[:, 0] = outlier
    return Reference(base, soft_prompts[("llama", 16)])


def test_quantized_context_restores_weights_and_spares_the_tied_embedding(reference):
    model = reference.model.get_base_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with quantized(model, ("lm_head", "layers.0"), bits=4, group_size=32):
        assert not torch.equal(model.lm_head.weight, before["lm_head.weight"])
        assert torch.equal(model.model.embed_tokens.weight, before["model.embed_tokens.weight"])
        assert torch.equal(model.model.layers[1].mlp.up_proj.weight, before["model.layers.1.mlp.up_proj.weight"])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_the_damaged_layer_ranks_first_and_keeping_it_at_8_bits_helps(reference):
    harmful, benign = calibration_set(per_class=3)
    report = sensitivity(reference, harmful + benign, bits=4, group_size=32, new_tokens=8)
    assert [r.layer for r in report.layers][0] == "layers.1"
    assert sorted(r.layer for r in report.layers) == ["layers.0", "layers.1", "lm_head"]
    assert report.suggested_keep_8bit[0] == "layers.1"
    assert report.with_suggestion.mean_kl < report.all_quantized.mean_kl
    assert "--keep-8bit layers.1" in report.markdown()
