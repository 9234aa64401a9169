"""A recipe's arithmetic simulated in PyTorch: weights rounded as torchao and ORT round them, int8 activations per token
or per block."""
import torch

from softfold.calibrate.simulate import fake_quantize_activation, fake_quantize_weight
from softfold.export.config import Arithmetic


def test_weight_rounding_by_hand():
    w = torch.tensor([[0.0, 0.5, -1.0, 1.5], [3.0, -3.0, 0.3, 0.0]])
    # 4 bits, groups of 2: scale = max|w| / 7.5, levels clamped to [-8, 7]
    q = fake_quantize_weight(w, bits=4, group_size=2)
    s = torch.tensor([0.5, 1.5, 3.0, 0.3]) / 7.5
    expected = (w.reshape(2, 2, 2) / s.reshape(2, 2, 1)).round().clamp(-8, 7) * s.reshape(2, 2, 1)
    torch.testing.assert_close(q, expected.reshape(2, 4))
    assert q[0, 0] == 0 and len(torch.unique(fake_quantize_weight(torch.randn(1, 64), 4, 64))) <= 16


def test_torchao_weight_rounding_is_torchaos():
    from torch import nn
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
    from torchao.quantization.granularity import PerGroup

    w = _on_a_grid(8, 64)
    linear = nn.Sequential(nn.Linear(64, 8, bias=False))
    linear[0].weight.data.copy_(w)
    quantize_(linear, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(32)))
    torch.testing.assert_close(fake_quantize_weight(w, 4, 32), linear[0].weight.dequantize().float(), rtol=0, atol=0)


def test_mlas_weight_rounding_is_onnxruntimes():
    """ORT's C++ MatMulNBits quantizer and its Python one (used for Gather), dequantized, on tie-heavy weights."""
    import numpy as np
    from onnxruntime.capi._pybind_state import quantize_matmul_4bits
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantizer

    w, (n, k, block) = _on_a_grid(8, 64), (8, 64, 32)
    packed, scales = np.zeros((n, k // block, block // 2), np.uint8), np.zeros(n * k // block, np.float32)
    quantize_matmul_4bits(packed, np.ascontiguousarray(w.T.numpy()), scales, np.zeros(n, np.uint8), block, n, k, True)
    levels = np.stack([packed & 0xF, packed >> 4], -1).reshape(n, k // block, block).astype(np.int32) - 8
    mlas = torch.from_numpy(levels * scales.reshape(n, k // block, 1)).reshape(n, k).float()
    torch.testing.assert_close(fake_quantize_weight(w, 4, 32, Arithmetic.MLAS), mlas, rtol=0, atol=0)
    weight_kn = w.T.numpy()[None]  # [K, N], blocks along K
    ours = fake_quantize_weight(w, 4, 32, Arithmetic.ORT_NUMPY)
    for start in (0, 32):
        q, scale = DefaultWeightOnlyQuantizer.quant_slice_symmetric(weight_kn[:, start:start + 32])
        torch.testing.assert_close(ours[:, start:start + 32], torch.from_numpy(q * scale)[0].T.float(), rtol=0, atol=0)
    assert not torch.equal(ours, fake_quantize_weight(w, 4, 32, Arithmetic.MLAS))  # ties round differently


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


def _on_a_grid(rows: int, cols: int) -> torch.Tensor:
    """Weights on a 1/16 grid, as a GGUF-dequantized model's are: many land exactly on rounding ties."""
    return torch.randint(-16, 17, (rows, cols), generator=torch.Generator().manual_seed(0)).float() / 16
