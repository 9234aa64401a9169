"""Attention for the ONNX graph: ORT's fused GroupQueryAttention, with the soft prompt's K/V in the cache.

The KV cache is a fixed buffer [batch, kv_heads, N + max_context, head_dim] (onnxruntime-genai then
shares one buffer between past and present). A request's first call (no user tokens cached yet) puts
the N prefix rows in front of the user's tokens: the prefix enters as N extra "tokens" whose K/V are
the folded ones and whose queries are zeros (their outputs are dropped), so GroupQueryAttention writes
the prefix into slots 0..N-1 itself and RoPE positions run over N + user position. Later calls add
nothing. The runtime's bookkeeping (`attention_mask` over user tokens only) is that of a plain model.

`prefix_plan` (once per call) and `prefix_gqa` (per layer) are torch custom ops: their eager bodies state
the semantics (and are what the tests compare ORT against); `*_onnx` are their ONNX translations for
`torch.onnx.export`.
"""
import onnx
import onnxscript
import torch
from onnx.defs import OpSchema
from onnxscript import ir
from onnxscript import opset18 as op
from torch import Tensor

from softfold.export.model import rotate_half

MSFT = onnxscript.values.Opset("com.microsoft", 1)


def _register_gqa_schema() -> None:
    """onnxscript needs a schema to emit a node; ORT's contrib ops are not in onnx's registry."""
    if onnx.defs.has("GroupQueryAttention", "com.microsoft"):
        return
    P, optional = OpSchema.FormalParameter, OpSchema.FormalParameterOption.Optional
    inputs = [P("query", "T"), P("key", "T", param_option=optional), P("value", "T", param_option=optional),
              P("past_key", "T", param_option=optional), P("past_value", "T", param_option=optional),
              P("seqlens_k", "M"), P("total_sequence_length", "M"),
              P("cos_cache", "T", param_option=optional), P("sin_cache", "T", param_option=optional)]
    outputs = [P("output", "T"), P("present_key", "T"), P("present_value", "T")]
    attributes = [OpSchema.Attribute(name, OpSchema.AttrType.INT, "")
                  for name in ("num_heads", "kv_num_heads", "do_rotary", "local_window_size")]
    attributes.append(OpSchema.Attribute("scale", OpSchema.AttrType.FLOAT, ""))
    onnx.defs.register_schema(OpSchema(
        "GroupQueryAttention", "com.microsoft", 1, inputs=inputs, outputs=outputs, attributes=attributes,
        type_constraints=[("T", ["tensor(float)"], ""), ("M", ["tensor(int32)"], "")]))


_register_gqa_schema()


def _rope(x: Tensor, positions: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Non-interleaved RoPE on x [B, T, heads, D] with half-width tables cos/sin [positions, D / 2]."""
    c = torch.cat([cos[positions]] * 2, -1)[None, :, None]
    s = torch.cat([sin[positions]] * 2, -1)[None, :, None]
    return x * c + rotate_half(x) * s


@torch.library.custom_op("softfold::prefix_plan", mutates_args=())
def prefix_plan(input_ids: Tensor, attention_mask: Tensor, n_prefix: int, width: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """What this call puts in front of its tokens, computed once for all layers: `pad` [1], N on a request's
    first call (no user tokens cached yet) else 0; `rows` [3], the shape of those rows [B, pad, width];
    GroupQueryAttention's `seqlens_k` [B] (int32, prefix included) and `total_sequence_length` [] (int32)."""
    bsz, seqlen = input_ids.shape
    total = attention_mask.shape[1]
    pad = n_prefix if total == seqlen else 0
    seqlens_k = (attention_mask.sum(1) + n_prefix - 1).to(torch.int32)
    return (torch.tensor([pad]), torch.tensor([bsz, pad, width]), seqlens_k,
            torch.tensor(total + n_prefix, dtype=torch.int32))


@prefix_plan.register_fake
def _(input_ids, attention_mask, n_prefix, width):
    long, int32 = input_ids.new_empty(1, dtype=torch.long), input_ids.new_empty((), dtype=torch.int32)
    return long, input_ids.new_empty(3, dtype=torch.long), input_ids.new_empty(input_ids.shape[0], dtype=torch.int32), int32


@torch.library.custom_op("softfold::prefix_gqa", mutates_args=())
def prefix_gqa(qkv: Tensor, past_k: Tensor, past_v: Tensor, prefix: Tensor, pad: Tensor, rows: Tensor,
               seqlens_k: Tensor, total_length: Tensor, cos: Tensor, sin: Tensor, num_heads: int,
               kv_heads: int, window: int = 0, scale: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """qkv [B, S, (H + 2 kv) D] before RoPE; prefix [1, N, (H + 2 kv) D]: zero queries, K before RoPE, V;
    past [B, kv, N + max_context, D]; pad, rows, seqlens_k, total_length from `prefix_plan`; `window` > 0: a query
    sees only the keys fewer than `window` positions back (GroupQueryAttention's local_window_size); `scale`: the
    scores' factor, 0.0 for head_dim ** -0.5. Returns y [B, S, H D] and the updated caches. Unpadded batches only
    (every mask row all ones)."""
    n_pad, head_dim = int(pad[0]), past_k.shape[-1]
    qkv = torch.cat([prefix[:, :n_pad].expand(*rows.tolist()), qkv], 1)
    bsz, length = qkv.shape[:2]
    q, k, v = qkv.split([num_heads * head_dim, kv_heads * head_dim, kv_heads * head_dim], -1)
    start = int(total_length) - length
    positions = torch.arange(start, start + length)
    q = _rope(q.reshape(bsz, length, num_heads, head_dim), positions, cos, sin)
    k = _rope(k.reshape(bsz, length, kv_heads, head_dim), positions, cos, sin)
    present_k, present_v = past_k.clone(), past_v.clone()
    present_k[:, :, start:start + length] = k.transpose(1, 2)
    present_v[:, :, start:start + length] = v.reshape(bsz, length, kv_heads, head_dim).transpose(1, 2)
    end, rep = start + length, num_heads // kv_heads
    keys = present_k[:, :, :end].repeat_interleave(rep, 1)
    values = present_v[:, :, :end].repeat_interleave(rep, 1)
    scores = q.transpose(1, 2) @ keys.transpose(2, 3) * (scale or head_dim ** -0.5)
    delta = positions[:, None] - torch.arange(end)[None, :]
    hidden = (delta < 0) | (delta >= window) if window else delta < 0
    y = scores.masked_fill(hidden, float("-inf")).softmax(-1) @ values
    return y.transpose(1, 2).reshape(bsz, length, num_heads * head_dim)[:, n_pad:].contiguous(), present_k, present_v


@prefix_gqa.register_fake
def _(qkv, past_k, past_v, prefix, pad, rows, seqlens_k, total_length, cos, sin, num_heads, kv_heads, window=0,
      scale=0.0):
    y = qkv.new_empty(qkv.shape[0], qkv.shape[1], num_heads * past_k.shape[-1])
    return y, torch.empty_like(past_k), torch.empty_like(past_v)


def _ints(*values: int):
    return op.Constant(value_ints=list(values))


def prefix_plan_onnx(input_ids, attention_mask, n_prefix: int, width: int):
    total = op.Shape(attention_mask, start=1, end=2)
    first = op.Cast(op.Equal(total, op.Shape(input_ids, start=1, end=2)), to=ir.DataType.INT64)
    pad = op.Mul(first, _ints(n_prefix))
    rows = op.Concat(op.Shape(input_ids, start=0, end=1), pad, _ints(width), axis=0)
    user = op.ReduceSum(attention_mask, _ints(1), keepdims=0)
    seqlens_k = op.Cast(op.Add(user, op.Constant(value_int=n_prefix - 1)), to=ir.DataType.INT32)
    total_length = op.Cast(op.Squeeze(op.Add(total, _ints(n_prefix)), _ints(0)), to=ir.DataType.INT32)
    return pad, rows, seqlens_k, total_length


def prefix_gqa_onnx(qkv, past_k, past_v, prefix, pad, rows, seqlens_k, total_length, cos, sin, num_heads: int,
                    kv_heads: int, window: int = 0, scale: float = 0.0):
    n_prefix = prefix.shape[1]
    if n_prefix:
        qkv = op.Concat(op.Expand(op.Slice(prefix, _ints(0), pad, _ints(1)), rows), qkv, axis=1)
    y, present_k, present_v = MSFT.GroupQueryAttention(
        qkv, None, None, past_k, past_v, seqlens_k, total_length, cos, sin,
        num_heads=num_heads, kv_num_heads=kv_heads, do_rotary=1, local_window_size=window or -1, scale=scale)
    if n_prefix:
        y = op.Slice(y, pad, _ints(2**62), _ints(1))
    return y, present_k, present_v


ONNX_TRANSLATIONS = {torch.ops.softfold.prefix_gqa.default: prefix_gqa_onnx,
                     torch.ops.softfold.prefix_plan.default: prefix_plan_onnx}
