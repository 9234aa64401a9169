"""The folded model as an ONNX-exportable decoder in the onnxruntime-genai convention.

forward(input_ids [B, S], attention_mask [B, P + S], past k/v per layer [B, kv_heads, N + max_context, head_dim])
  -> logits [B, S, vocab], present k/v per layer (the same buffers, updated)

The KV cache is a fixed-size buffer whose first N slots hold the soft prompt's K/V, written there by the
request's first call (see `gqa.py`); attention is ORT's GroupQueryAttention with RoPE fused in, as in
ORT GenAI's own models. The runtime's bookkeeping is a plain model's: `attention_mask` counts the user's
tokens only. Weights are shared with the `Transformer` it wraps: one folding, two export formats.
"""
import torch
from torch import nn

from softfold.export.gqa import prefix_gqa, prefix_plan
from softfold.export.model import OffsetLinear, RMSNorm, Transformer, rotate_half
from softfold.export.quantize import RoundedWeight


def _rms_norm(norm: RMSNorm, x: torch.Tensor) -> torch.Tensor:
    """RMSNorm in the form ONNX Runtime fuses into one SimplifiedLayerNormalization (a Div, not a reciprocal)."""
    return norm.weight * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps))


def _fused_qkv(attn) -> nn.Linear:
    """q, k and v projections as one Linear (one MatMulNBits instead of three, as ORT GenAI's builder does).

    ONNX only: XNNPACK cannot split the fused output while the token count is dynamic.
    """
    projections = (attn.q_proj, attn.k_proj, attn.v_proj)
    fused = nn.Linear(attn.q_proj.in_features, sum(p.out_features for p in projections),
                      bias=attn.q_proj.bias is not None)
    fused.weight.data = torch.cat([p.weight.data for p in projections])
    if fused.bias is not None:
        fused.bias.data = torch.cat([p.bias.data for p in projections])
    if isinstance(attn.q_proj, OffsetLinear):
        group = fused.in_features // attn.q_proj.block_offset.shape[0]
        fused = OffsetLinear(fused, torch.cat([p.block_offset for p in projections], 1).T / group)
    return fused


def fused_qkv_rounded(rounded: dict) -> dict:
    """GPTQ's weights by module name with each layer's q, k, v projections as one `qkv_proj` (rows stacked
    as `_fused_qkv` stacks them; GPTQ rounds every output row on its own, so stacking is exact)."""
    out = {name: w for name, w in rounded.items() if not name.endswith(("q_proj", "k_proj", "v_proj"))}
    for name in [n for n in rounded if n.endswith("q_proj")]:
        parts = [rounded[name.removesuffix("q_proj") + p] for p in ("q_proj", "k_proj", "v_proj")]
        offsets = None if parts[0].offset is None else torch.cat([w.offset for w in parts])
        out[name.removesuffix("q_proj") + "qkv_proj"] = RoundedWeight(torch.cat([w.q for w in parts]),
                                                                      torch.cat([w.scale for w in parts]), offsets)
    return out


def _normed_heads(attn, qkv: torch.Tensor, args) -> torch.Tensor:
    """Qwen3: the fused projection's queries and keys with each head RMS-normalized (before RoPE, which
    GroupQueryAttention applies)."""
    q_width, kv_width = args.n_heads * args.head_dim, args.n_kv_heads * args.head_dim
    q, k, v = qkv.split([q_width, kv_width, kv_width], -1)
    q = _rms_norm(attn.q_norm, q.unflatten(-1, (args.n_heads, args.head_dim))).flatten(-2)
    k = _rms_norm(attn.k_norm, k.unflatten(-1, (args.n_kv_heads, args.head_dim))).flatten(-2)
    return torch.cat([q, k, v], -1)


def _unrotated(prefix_k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The folded prefix keys [1, N, kv, D] (after RoPE at positions 0..N-1) with RoPE undone: GroupQueryAttention
    applies it again when it writes them into the cache."""
    n = prefix_k.shape[1]
    c, s = cos[:n, None], sin[:n, None]
    return prefix_k * c - rotate_half(prefix_k) * s


class OnnxDecoder(nn.Module):
    def __init__(self, model: Transformer):
        super().__init__()
        self.model = model
        a, half = model.args, model.args.head_dim // 2
        self.register_buffer("rope_cos", model.rope_cos[:, :half].contiguous())  # [N + max_context, D / 2]
        self.register_buffer("rope_sin", model.rope_sin[:, :half].contiguous())
        if a.sliding_window:  # the local layers' table (Gemma 3)
            self.register_buffer("local_cos", model.local_cos[:, :half].contiguous())
            self.register_buffer("local_sin", model.local_sin[:, :half].contiguous())
        for i, block in enumerate(model.layers):  # as submodules of each attention, so ONNX scopes name the layer
            attn = block.self_attn
            attn.qkv_proj = _fused_qkv(attn)
            n = attn.prefix_k.shape[1]
            local = self.is_local(i)
            keys = _unrotated(attn.prefix_k, *((model.local_cos, model.local_sin) if local else
                                               (model.rope_cos, model.rope_sin)))
            kv_width = a.n_kv_heads * a.head_dim
            attn.register_buffer("prefix_qkv", torch.cat(  # zero queries, keys before RoPE, values
                [torch.zeros(1, n, a.n_heads * a.head_dim), keys.reshape(1, n, kv_width),
                 attn.prefix_v.reshape(1, n, kv_width)], -1))

    def is_local(self, layer: int) -> bool:
        a = self.model.args
        return bool(a.sliding_window) and a.sliding_layers[layer]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *past: torch.Tensor):
        m, a = self.model, self.model.args
        plan = prefix_plan(input_ids, attention_mask, m.n_prefix, (a.n_heads + 2 * a.n_kv_heads) * a.head_dim)
        h = m.embed(input_ids)
        presents = []
        for i, block in enumerate(m.layers):
            attn = block.self_attn
            qkv = attn.qkv_proj(_rms_norm(block.input_layernorm, h))
            if a.qk_norm:
                qkv = _normed_heads(attn, qkv, a)
            local = self.is_local(i)
            tables = (self.local_cos, self.local_sin) if local else (self.rope_cos, self.rope_sin)
            y, k, v = prefix_gqa(qkv, past[2 * i], past[2 * i + 1], attn.prefix_qkv, *plan, *tables, a.n_heads,
                                 a.n_kv_heads, a.sliding_window if local else 0, a.attn_scale or 0.0)
            presents += [k, v]
            if block.sandwich:  # Gemma 3
                h = h + _rms_norm(block.post_attention_layernorm, attn.o_proj(y))
                h = h + _rms_norm(block.post_feedforward_layernorm,
                                  block.mlp(_rms_norm(block.pre_feedforward_layernorm, h)))
            else:
                h = h + attn.o_proj(y)
                h = h + block.mlp(_rms_norm(block.post_attention_layernorm, h))
            if block.steering is not None:  # a control vector, after the block (model.py's Block)
                h = h + block.steering
        return (m.lm_head(_rms_norm(m.norm, h)), *presents)
