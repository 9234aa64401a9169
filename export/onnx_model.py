"""The folded model as an ONNX-exportable decoder in the onnxruntime-genai / optimum convention.

forward(input_ids [B, S], attention_mask [B, P + S], past k/v per layer [B, kv_heads, P, head_dim])
  -> logits [B, S, vocab], present k/v per layer [B, kv_heads, P + S, head_dim]

The soft prompt's K/V are constants in the graph, always attended to (their scores are joined to
the cache's, see `_attention`); `present` excludes them, so the runtime's cache bookkeeping is unchanged.
RoPE positions come from the attention mask (as ORT GenAI's own models do) offset by N.
Weights are shared with the `Transformer` it wraps: one folding, two export formats.
"""
import torch
from torch import nn

from softfold.export.model import RMSNorm, Transformer


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
    return fused


class OnnxDecoder(nn.Module):
    def __init__(self, model: Transformer):
        super().__init__()
        self.model = model
        self.n_prefix = model.n_prefix
        for block in model.layers:  # as a submodule of each attention, so its ONNX scope names the layer
            block.self_attn.qkv_proj = _fused_qkv(block.self_attn)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *past: torch.Tensor):
        m, a = self.model, self.model.args
        bsz, seqlen = input_ids.shape
        positions = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)[:, -seqlen:] + self.n_prefix
        cos, sin = m.rope_cos[positions].unsqueeze(1), m.rope_sin[positions].unsqueeze(1)  # [B, 1, S, D]
        mask = self._mask(attention_mask, seqlen)
        h = m.embed(input_ids)
        presents = []
        for i, block in enumerate(m.layers):
            attn = block.self_attn
            x = _rms_norm(block.input_layernorm, h)
            q, k, v = attn.qkv_proj(x).split([a.n_heads * a.head_dim, a.n_kv_heads * a.head_dim,
                                               a.n_kv_heads * a.head_dim], -1)
            q = q.reshape(bsz, seqlen, a.n_heads, a.head_dim).transpose(1, 2)
            k = k.reshape(bsz, seqlen, a.n_kv_heads, a.head_dim).transpose(1, 2)
            v = v.reshape(bsz, seqlen, a.n_kv_heads, a.head_dim).transpose(1, 2)
            q = q * cos + (q @ attn.rotate) * sin  # rotate_half as one exact MatMul, not Split/Neg/Concat
            k = k * cos + (k @ attn.rotate) * sin
            k = torch.cat([past[2 * i], k], dim=2)
            v = torch.cat([past[2 * i + 1], v], dim=2)
            presents += [k, v]
            y = self._attention(q, k, v, attn.prefix_k, attn.prefix_v, mask)
            h = h + attn.o_proj(y.transpose(1, 2).reshape(bsz, seqlen, a.n_heads * a.head_dim))
            h = h + block.mlp(_rms_norm(block.post_attention_layernorm, h))
        return (m.lm_head(_rms_norm(m.norm, h)), *presents)

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prefix_k: torch.Tensor,
                   prefix_v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Grouped-query attention over prefix + cache without copying either per step.

        q [B, H, S, D]; k, v [B, kv, P + S, D]; prefix [1, N, kv, D]; mask [B, 1, S, N + P + S]. The query
        heads sharing a KV head are stacked along the sequence axis (no repeat_interleave of K/V), and
        the prefix enters as scores concatenated to the cache's scores (no concatenation of K/V).
        """
        bsz, n_heads, seqlen, head_dim = q.shape
        kv_heads, n = k.shape[1], prefix_k.shape[1]
        rep = n_heads // kv_heads
        qg = q.reshape(bsz, kv_heads, rep * seqlen, head_dim) * head_dim ** -0.5
        scores = qg @ k.transpose(2, 3)
        if n:
            scores = torch.cat([qg @ prefix_k.permute(0, 2, 3, 1), scores], dim=-1)
        probs = (scores + mask.repeat(1, 1, rep, 1)).softmax(-1)
        y = probs[..., n:] @ v
        if n:
            y = y + probs[..., :n] @ prefix_v.transpose(1, 2)
        return y.reshape(bsz, n_heads, seqlen, head_dim)

    def _mask(self, attention_mask: torch.Tensor, seqlen: int) -> torch.Tensor:
        """Additive mask [B, 1, S, N + P + S]: prefix always visible; past/current per mask and causality."""
        bsz, total = attention_mask.shape
        past_len = total - seqlen
        query_pos = torch.arange(seqlen).unsqueeze(1) + past_len  # [S, 1]
        key_pos = torch.arange(total).unsqueeze(0)  # [1, P + S]
        allowed = (key_pos <= query_pos).unsqueeze(0) & attention_mask.bool().unsqueeze(1)  # [B, S, P + S]
        allowed = torch.cat([torch.ones(bsz, seqlen, self.n_prefix, dtype=torch.bool), allowed], dim=-1)
        zero = torch.zeros((), dtype=torch.float32)
        return torch.where(allowed, zero, torch.finfo(torch.float32).min).unsqueeze(1)
