"""The ONNX decoder's parts: GPTQ's weights stacked as the fused q/k/v projection stacks them, the folded prefix
keys with RoPE undone for GroupQueryAttention to apply again."""
import torch

from softfold.export.model import rotate_half
from softfold.export.onnx_model import _unrotated, fused_qkv_rounded
from softfold.export.quantize import RoundedWeight


def rounded(rows: int, offset: bool = False) -> RoundedWeight:
    return RoundedWeight(torch.randint(-8, 8, (rows, 64), dtype=torch.int8), torch.rand(rows, 2),
                         torch.rand(rows, 2) if offset else None)


def test_q_k_v_are_stacked_in_that_order_and_the_rest_kept():
    weights = {"layers.0.self_attn.q_proj": rounded(8), "layers.0.self_attn.k_proj": rounded(4),
               "layers.0.self_attn.v_proj": rounded(4, offset=False), "layers.0.mlp.up_proj": rounded(16)}
    fused = fused_qkv_rounded(weights)
    assert sorted(fused) == ["layers.0.mlp.up_proj", "layers.0.self_attn.qkv_proj"]
    qkv = fused["layers.0.self_attn.qkv_proj"]
    assert torch.equal(qkv.q[8:12], weights["layers.0.self_attn.k_proj"].q) and qkv.offset is None
    assert torch.equal(qkv.dequantized()[:8], weights["layers.0.self_attn.q_proj"].dequantized())


def test_undoing_rope_then_applying_it_gives_the_folded_keys():
    n, dim = 3, 8
    angles = torch.arange(n)[:, None] * torch.rand(1, dim // 2)
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)
    keys = torch.randn(1, n, 2, dim)
    plain = _unrotated(keys, cos, sin)
    again = plain * cos[:n, None] + rotate_half(plain) * sin[:n, None]
    torch.testing.assert_close(again, keys, rtol=1e-5, atol=1e-5)
