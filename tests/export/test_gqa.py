"""The ONNX attention op: ORT's GroupQueryAttention, as exported, against the op's eager semantics."""
import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn
from torch.export import Dim

from softfold.export.gqa import ONNX_TRANSLATIONS, prefix_gqa, prefix_plan

pytestmark = pytest.mark.integration  # exports through torch.onnx and runs onnxruntime

HEADS, KV_HEADS, HEAD_DIM, MAX_CONTEXT = 4, 2, 16, 32


class Attention(nn.Module):
    def __init__(self, n_prefix: int):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        width = (HEADS + 2 * KV_HEADS) * HEAD_DIM
        prefix = torch.randn(1, n_prefix, width, generator=g)
        prefix[..., :HEADS * HEAD_DIM] = 0  # the prefix rows' queries are zeros, as OnnxDecoder builds them
        self.register_buffer("prefix", prefix)
        angles = torch.arange(n_prefix + MAX_CONTEXT)[:, None] * 10000 ** (-torch.arange(HEAD_DIM // 2) / (HEAD_DIM // 2))
        self.register_buffer("cos", angles.cos())
        self.register_buffer("sin", angles.sin())

    def forward(self, qkv, attention_mask, past_k, past_v):
        plan = prefix_plan(qkv[..., 0].long(), attention_mask, self.prefix.shape[1], self.prefix.shape[2])
        return prefix_gqa(qkv, past_k, past_v, self.prefix, *plan, self.cos, self.sin, HEADS, KV_HEADS)


@pytest.mark.parametrize("n_prefix", [0, 5])
def test_group_query_attention_matches_eager_semantics(tmp_path, n_prefix):
    module = Attention(n_prefix)
    cache_shape = (1, KV_HEADS, n_prefix + MAX_CONTEXT, HEAD_DIM)
    example = (torch.randn(1, 3, (HEADS + 2 * KV_HEADS) * HEAD_DIM), torch.ones(1, 4, dtype=torch.long),
               torch.zeros(cache_shape), torch.zeros(cache_shape))
    seq, total = Dim("seq", max=MAX_CONTEXT), Dim("total", max=MAX_CONTEXT)
    program = torch.onnx.export(module, example, dynamo=True, dynamic_shapes=({1: seq}, {1: total}, None, None),
                                input_names=["qkv", "attention_mask", "past_k", "past_v"],
                                output_names=["y", "present_k", "present_v"], custom_translation_table=ONNX_TRANSLATIONS)
    program.save(str(tmp_path / "gqa.onnx"))
    session = ort.InferenceSession(str(tmp_path / "gqa.onnx"), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(1)
    want_k = want_v = torch.zeros(cache_shape)
    got_k, got_v = want_k.numpy(), want_v.numpy()
    done = 0
    for step in (7, 1, 1, 3, 1):  # the request's first call, decode steps, a chunk of prompt with a cache
        qkv = torch.randn(1, step, example[0].shape[-1], generator=g)
        done += step
        mask = torch.ones(1, done, dtype=torch.long)
        want, want_k, want_v = module(qkv, mask, want_k, want_v)
        got, got_k, got_v = session.run(None, {"qkv": qkv.numpy(), "attention_mask": mask.numpy(),
                                               "past_k": got_k, "past_v": got_v})
        assert got.shape == (1, step, HEADS * HEAD_DIM)
        assert np.abs(got - want.numpy()).max() <= 1e-5
        assert np.abs(got_k - want_k.numpy()).max() <= 1e-5 and np.abs(got_v - want_v.numpy()).max() <= 1e-5
    # the prefix sits in the cache's first slots (keys rotated at positions 0..N-1), the user's tokens after it
    assert torch.equal(want_v[0, :, :n_prefix], module.prefix[0, :, (HEADS + KV_HEADS) * HEAD_DIM:].view(n_prefix, KV_HEADS, HEAD_DIM).transpose(0, 1))
    assert want_k[0, :, n_prefix + done:].abs().max() == 0
    assert want_k[0, :, n_prefix + done - 1].abs().max() > 0
