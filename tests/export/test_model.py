"""The compact export model's parts, against their definitions: the sliding-window mask, RMSNorm, the rotation, the
tanh GELU, an OffsetLinear's product and the Linears' names."""
import math

import torch
import torch.nn.functional as F

from softfold.export.model import (OffsetLinear, RMSNorm, gelu_tanh, linear_names, project, rotate_half,
                                   rotate_half_matrix, window_mask)


def test_the_window_mask_sees_the_last_window_positions():
    mask = window_mask(start=2, seqlen=2, cache_len=6, window=3)  # queries at positions 2 and 3
    assert (mask == 0).tolist() == [[True, True, True, False, False, False], [False, True, True, True, False, False]]


def test_rms_norm_and_the_rotation_are_their_definitions():
    norm, x = RMSNorm(8, 1e-5), torch.randn(1, 3, 8)
    norm.weight.data = torch.rand(8) + 0.5
    want = norm.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)
    torch.testing.assert_close(norm(x), want)
    heads = torch.randn(2, 8)
    assert torch.equal(heads @ rotate_half_matrix(8), rotate_half(heads))  # a signed permutation: exact


def test_gelu_tanh_is_the_tanh_approximation():
    x = torch.linspace(-8, 8, 101)
    torch.testing.assert_close(gelu_tanh(x), F.gelu(x, approximate="tanh"))
    assert abs(float(gelu_tanh(torch.tensor(1.0))) - 0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * 1.044715))) < 1e-6


def test_an_offset_linear_adds_each_blocks_sum_times_its_offset():
    linear, offset = torch.nn.Linear(8, 3, bias=False), torch.randn(3, 2)  # 2 blocks of 4 inputs
    layer, x = OffsetLinear(linear, offset), torch.randn(1, 5, 8)
    sums = x.reshape(1, 5, 2, 4).sum(-1)
    torch.testing.assert_close(layer(x), linear(x) + sums @ offset.T, rtol=1e-5, atol=1e-5)
    shared = project(x, layer, linear)  # the means computed once for the OffsetLinears of one input
    torch.testing.assert_close(shared[0], layer(x)) and torch.testing.assert_close(shared[1], linear(x))
    layer.offsets_as_linear()  # the same product, as a Linear a quantizer can store
    torch.testing.assert_close(layer(x), linear(x) + sums @ offset.T, rtol=1e-5, atol=1e-5)


def test_the_linears_are_named_as_the_folded_model_names_them():
    names = linear_names(2)
    assert names[-1] == "lm_head" and "layers.1.self_attn.q_proj" in names and "layers.0.mlp.down_proj" in names
