"""A compact, export-friendly decoder (Llama / Qwen2 / Qwen3 / Phi-3 / Gemma 3 families) with the soft prompt folded in.

Qwen3 and Gemma 3 normalize each query and key head (RMSNorm over head_dim) before RoPE (`qk_norm`); Phi-3's fused
`qkv_proj` / `gate_up_proj` are split into the separate projections at load (`fold.py`), which is exact. Gemma 3
scales token embeddings by sqrt(dim) inside `embed` (so the soft prompt, which PEFT puts after the embedding
module, is not scaled), stores its (1 + w) norm weights as 1 + w (`fold.py`), normalizes each sublayer's output too
(`sandwich_norms`), uses GELU-tanh, and attends within `sliding_window` positions on its local layers, which have
their own RoPE table.

The soft prompt's per-layer K/V (`prefix_k`, `prefix_v`, computed once in fp32 by `fold.py`)
are constants of the module. A request's first forward (position 0) writes them into the first N
slots of the KV cache, so the runtime sees user positions starting at 0 while RoPE positions and
attention run over N + position. A runner's reset (position back to 0) therefore always keeps the soft prompt.

In virtual-token mode there is no prefix: token ids from `virtual_start` on look up the soft
prompt's rows (`virtual_embeddings`, a buffer, so quantization never touches it) instead of the
embedding table, and the prompt itself starts with those N ids.

Attention and cache updates use ExecuTorch's `llama::custom_sdpa` / `llama::update_cache`
ops (layout [batch, seq, heads, head_dim]); they run eagerly too, once
`executorch.extension.llm.custom_ops` is imported.
"""
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401  (registers llama:: ops)
from torch import nn

from softfold.inputs.architecture import activation_of


@dataclass(frozen=True)
class ModelArgs:
    arch: str
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden_dim: int
    norm_eps: float
    qkv_bias: bool
    qk_norm: bool  # Qwen3, Gemma 3: RMSNorm over each query / key head before RoPE
    max_context: int  # user positions the cache holds (the soft prompt comes on top)
    activation: str = "silu"  # of the gated MLP: "silu" or "gelu_pytorch_tanh"
    embed_scale: float = 1.0  # Gemma 3: token embeddings times sqrt(dim)
    sandwich_norms: bool = False  # Gemma 3: norms after attention and MLP too (four per block)
    attn_scale: float | None = None  # None: head_dim ** -0.5
    sliding_window: int = 0  # attention span of the local layers (Gemma 3); 0: none
    sliding_layers: tuple[bool, ...] = ()  # per layer: a local (sliding-window) layer

    @classmethod
    def from_hf(cls, config, max_context: int) -> "ModelArgs":
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(
            arch=config.model_type,
            vocab_size=config.vocab_size,
            dim=config.hidden_size,
            n_layers=config.num_hidden_layers,
            n_heads=config.num_attention_heads,
            n_kv_heads=config.num_key_value_heads,
            head_dim=head_dim,
            hidden_dim=config.intermediate_size,
            norm_eps=config.rms_norm_eps,
            qkv_bias=config.model_type == "qwen2" or bool(getattr(config, "attention_bias", False)),
            qk_norm=config.model_type in ("qwen3", "gemma3_text"),
            max_context=max_context,
            activation=activation_of(config),
            **(_gemma3(config) if config.model_type == "gemma3_text" else {}),
        )


def _gemma3(config) -> dict:
    return dict(embed_scale=config.hidden_size ** 0.5, sandwich_norms=True,
                attn_scale=config.query_pre_attn_scalar ** -0.5, sliding_window=config.sliding_window,
                sliding_layers=tuple(t == "sliding_attention" for t in config.layer_types))


def window_mask(start: int, seqlen: int, cache_len: int, window: int) -> torch.Tensor:
    """[seqlen, cache_len] additive mask: the query at position start + i sees cache slots j with
    0 <= start + i - j < window (as transformers' sliding-window mask)."""
    delta = (torch.arange(seqlen) + start).unsqueeze(1) - torch.arange(cache_len).unsqueeze(0)
    return torch.where((delta >= 0) & (delta < window), 0.0, float("-inf"))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # As [1, tokens, dim, 1]: XNNPACK delegates a mean only over the two innermost dims of a 4-D tensor,
        # and a view only when its sizes are static (-1 allowed), so the norm stays inside the partition.
        # Half-precision programs normalize in fp32; an fp32 program gets no casts (each is an operator to lower).
        x4 = x.reshape(1, -1, x.shape[-1], 1)
        x4 = x4 if x4.dtype == torch.float32 else x4.float()
        x4 = x4 * torch.rsqrt(x4.pow(2).mean((2, 3), keepdim=True) + self.eps)
        y = x4.reshape(*x.shape[:-2], -1, x.shape[-1])
        return self.weight * (y if y.dtype == x.dtype else y.to(x.dtype))


class OffsetLinear(nn.Linear):
    """A Linear plus one constant per block of inputs: y = x W^T + (block sums of x) @ offsets.

    Holds a weight on an asymmetric 4-bit grid (GGUF Q4_1, calibrate/grid.py) as the symmetric grid the int4
    kernels take (`weight`) and the per-block remainder, fp32 (`block_offset`), or, after `offsets_as_linear`, a
    Linear over the block sums (`offsets`) that a quantizer can store in fewer bytes. The block sums are 4-D means
    (the form of `RMSNorm`'s, for XNNPACK) times the block size, which the offsets carry.
    """

    def __init__(self, linear: nn.Linear, offset: torch.Tensor):
        super().__init__(linear.in_features, linear.out_features, bias=linear.bias is not None)
        self.weight, self.bias = linear.weight, linear.bias
        self.blocks = offset.shape[1]
        self.register_buffer("block_offset", (offset.T * (linear.in_features // self.blocks)).contiguous())
        self.offsets: nn.Linear | None = None

    def offsets_as_linear(self) -> None:
        """Move `block_offset` into `offsets`, a bias-free Linear (blocks -> out), the same product."""
        blocks, out = self.block_offset.shape
        self.offsets = nn.Linear(blocks, out, bias=False)
        self.offsets.weight = nn.Parameter(self.block_offset.T.contiguous(), requires_grad=False)
        del self.block_offset

    def block_means(self, x: torch.Tensor) -> torch.Tensor:
        """[tokens, blocks]: the mean of each block of x's inputs."""
        # XNNPACK delegates a mean only over dims (2, 3) of a 4-D tensor, kept, and a view only when its sizes are
        # ints (-1 allowed; `y.shape` holds the symbolic length): anything else runs outside the delegate and
        # splits its partition, at every OffsetLinear
        b = self.blocks
        return x.reshape(-1, b, x.shape[-1] // b, 1).mean((2, 3), keepdim=True).reshape(-1, b)

    def forward(self, x: torch.Tensor, means: torch.Tensor | None = None) -> torch.Tensor:
        """`means`: x's `block_means` where another OffsetLinear of the same input already computed them."""
        y = super().forward(x)
        means = self.block_means(x) if means is None else means
        offset = self.offsets(means) if self.offsets is not None else means @ self.block_offset
        return y + offset.reshape(*y.shape[:-2], -1, y.shape[-1])


def project(x: torch.Tensor, *linears: nn.Linear) -> list[torch.Tensor]:
    """Each Linear applied to the same input; OffsetLinears with one block count share one `block_means` of it
    (q, k and v; gate and up): fewer operators to lower and to run."""
    means, out = {}, []
    for linear in linears:
        if isinstance(linear, OffsetLinear):
            if linear.blocks not in means:
                means[linear.blocks] = linear.block_means(x)
            out.append(linear(x, means[linear.blocks]))
        else:
            out.append(linear(x))
    return out


def with_offsets(model: nn.Module, rounded: dict) -> None:
    """Each Linear whose `rounded` weight has per-block offsets (calibrate/grid.py) as an OffsetLinear holding the
    symmetric part in fp32 (what the quantizers then store exactly) and the offsets."""
    for name, weight in rounded.items():
        if weight.offset is None:
            continue
        parent, _, child = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        linear = getattr(owner, child)
        linear.weight.data = replace(weight, offset=None).dequantized()
        setattr(owner, child, OffsetLinear(linear, weight.offset))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotate_half_matrix(head_dim: int) -> torch.Tensor:
    """R with x @ R == rotate_half(x): a signed permutation, so the product is exact."""
    return rotate_half(torch.eye(head_dim))


class KVCache(nn.Module):
    def __init__(self, n_prefix: int, args: ModelArgs):
        super().__init__()
        shape = (1, n_prefix + args.max_context, args.n_kv_heads, args.head_dim)
        self.register_buffer("k_cache", torch.zeros(shape), persistent=False)
        self.register_buffer("v_cache", torch.zeros(shape), persistent=False)

    def update(self, start: int, k: torch.Tensor, v: torch.Tensor) -> None:
        torch.ops.llama.update_cache(k, self.k_cache, start)
        torch.ops.llama.update_cache(v, self.v_cache, start)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs, n_prefix: int):
        super().__init__()
        self.args = args
        self.q_proj = nn.Linear(args.dim, args.n_heads * args.head_dim, bias=args.qkv_bias)
        self.k_proj = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=args.qkv_bias)
        self.v_proj = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=args.qkv_bias)
        self.o_proj = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False)
        self.kv = KVCache(n_prefix, args)
        kv_shape = (1, n_prefix, args.n_kv_heads, args.head_dim)
        self.register_buffer("prefix_k", torch.zeros(kv_shape))
        self.register_buffer("prefix_v", torch.zeros(kv_shape))
        self.register_buffer("rotate", rotate_half_matrix(args.head_dim), persistent=False)
        if args.qk_norm:
            self.q_norm = RMSNorm(args.head_dim, args.norm_eps)
            self.k_norm = RMSNorm(args.head_dim, args.norm_eps)

    def heads(self, x: torch.Tensor, norm_name: str, n_heads: int) -> torch.Tensor:
        """A projection's output as [1, T, heads, head_dim], each head RMS-normalized first where the model does."""
        x = x.view(1, -1, self.args.head_dim)
        if self.args.qk_norm:
            x = getattr(self, norm_name)(x)
        return x.view(1, -1, n_heads, self.args.head_dim)

    def rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        # rotate_half as a matmul: XNNPACK cannot split a dynamic-length tensor, but it runs this product
        rotated = (x.reshape(-1, x.shape[-1]) @ self.rotate).reshape(x.shape[0], -1, *x.shape[2:])
        return x * cos + rotated * sin

    def forward(self, x: torch.Tensor, start: int, cos: torch.Tensor, sin: torch.Tensor, n_write: int,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        a = self.args  # views use -1 for the token count: XNNPACK delegates views with static sizes only
        q, k, v = project(x, self.q_proj, self.k_proj, self.v_proj)
        q = self.rope(self.heads(q, "q_norm", a.n_heads), cos, sin)
        k = self.rope(self.heads(k, "k_norm", a.n_kv_heads), cos, sin)
        v = v.view(1, -1, a.n_kv_heads, a.head_dim)
        if self.prefix_k.shape[1] > 0:
            first = self.prefix_k.shape[1] - n_write
            self.kv.update(first, self.prefix_k.narrow(1, first, n_write), self.prefix_v.narrow(1, first, n_write))
        self.kv.update(start, k, v)
        if mask is None:
            y = torch.ops.llama.custom_sdpa(q, self.kv.k_cache, self.kv.v_cache, start, None, 0, True, a.attn_scale)
        else:  # a local layer: the window mask over the whole cache says what it sees
            y = torch.ops.llama.custom_sdpa(q, self.kv.k_cache, self.kv.v_cache, 0, mask, 0, False, a.attn_scale)
        return self.o_proj(y.view(1, -1, a.n_heads * a.head_dim))


class MLP(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.gate_proj = nn.Linear(args.dim, args.hidden_dim, bias=False)
        self.up_proj = nn.Linear(args.dim, args.hidden_dim, bias=False)
        self.down_proj = nn.Linear(args.hidden_dim, args.dim, bias=False)
        self.gelu = args.activation == "gelu_pytorch_tanh"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = project(x, self.gate_proj, self.up_proj)
        return self.down_proj((gelu_tanh(gate) if self.gelu else F.silu(gate)) * up)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU's tanh approximation as x * sigmoid(2 z) (= 0.5 x (1 + tanh z)), within 5e-7 of F.gelu(approximate="tanh")
    in fp32: XNNPACK lowers F.gelu(approximate="tanh") to the exact (erf) GELU, up to 5e-4 away."""
    return x * torch.sigmoid(2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x))


class Block(nn.Module):
    """Llama order: x + attn(norm(x)), then x + mlp(post_attention_layernorm(x)). With `sandwich_norms` (Gemma 3)
    post_attention_layernorm normalizes the attention's output and the MLP has its own norms before and after.
    A steered block adds its constant `steering` vector to its output, after the residual add, as llama.cpp adds a
    control vector's direction.N after block N (softfold/inputs/control_vector.py); an unsteered block has no such op."""

    def __init__(self, args: ModelArgs, n_prefix: int):
        super().__init__()
        self.self_attn = Attention(args, n_prefix)
        self.mlp = MLP(args)
        self.input_layernorm = RMSNorm(args.dim, args.norm_eps)
        self.post_attention_layernorm = RMSNorm(args.dim, args.norm_eps)
        self.sandwich = args.sandwich_norms
        if self.sandwich:
            self.pre_feedforward_layernorm = RMSNorm(args.dim, args.norm_eps)
            self.post_feedforward_layernorm = RMSNorm(args.dim, args.norm_eps)
        self.register_buffer("steering", None)  # [dim]: a control vector added to the block's output (fold.py)

    def forward(self, x: torch.Tensor, start: int, cos: torch.Tensor, sin: torch.Tensor, n_write: int,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.self_attn(self.input_layernorm(x), start, cos, sin, n_write, mask)
        if not self.sandwich:
            x = x + y
            x = x + self.mlp(self.post_attention_layernorm(x))
        else:
            x = x + self.post_attention_layernorm(y)
            x = x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))
        return x if self.steering is None else x + self.steering


LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def linear_names(n_layers: int) -> list[str]:
    """Every Linear of the folded Transformer by module name: what --keep-8bit selects from."""
    return [f"layers.{i}.{name}" for i in range(n_layers) for name in LINEARS] + ["lm_head"]


class Transformer(nn.Module):
    """forward(tokens [1, T], input_pos [1]) -> logits of the last position [1, vocab]."""

    def __init__(self, args: ModelArgs, n_prefix: int, rope_cos: torch.Tensor, rope_sin: torch.Tensor,
                 n_virtual: int = 0, virtual_start: int = 0, local_cos: torch.Tensor | None = None,
                 local_sin: torch.Tensor | None = None):
        super().__init__()
        self.args = args
        self.n_prefix = n_prefix
        self.n_virtual, self.virtual_start = n_virtual, virtual_start
        self.embed_tokens = nn.Embedding(args.vocab_size, args.dim)
        self.register_buffer("virtual_embeddings", torch.zeros(n_virtual, args.dim))
        self.layers = nn.ModuleList(Block(args, n_prefix) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.lm_head = nn.Linear(args.dim, args.vocab_size, bias=False)
        self.register_buffer("rope_cos", rope_cos)  # [n_prefix + max_context, head_dim]
        self.register_buffer("rope_sin", rope_sin)
        if args.sliding_window:  # the local layers' own RoPE table (Gemma 3)
            self.register_buffer("local_cos", local_cos)
            self.register_buffer("local_sin", local_sin)

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        return self.forward_embeds(self.embed(tokens), input_pos)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token embeddings (times embed_scale); virtual-token ids get the soft prompt's rows, never scaled."""
        if not self.n_virtual:
            return self.scaled(self.embed_tokens(tokens))
        h = self.scaled(self.embed_tokens(tokens.clamp_max(self.args.vocab_size - 1)))
        rows = self.virtual_embeddings[(tokens - self.virtual_start).clamp(0, self.n_virtual - 1)]
        return torch.where((tokens >= self.virtual_start).unsqueeze(-1), rows, h)

    def scaled(self, h: torch.Tensor) -> torch.Tensor:
        return h if self.args.embed_scale == 1.0 else h * self.args.embed_scale  # in fp32, as transformers

    def forward_embeds(self, h: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        seqlen = h.shape[1]
        pos = input_pos[0].item()
        torch._check(pos >= 0)
        torch._check(pos + seqlen <= self.args.max_context)
        start = pos + self.n_prefix
        cos = self.rope_cos.narrow(0, start, seqlen).view(1, seqlen, 1, -1)
        sin = self.rope_sin.narrow(0, start, seqlen).view(1, seqlen, 1, -1)
        if self.args.sliding_window:
            local = (self.local_cos.narrow(0, start, seqlen).view(1, seqlen, 1, -1),
                     self.local_sin.narrow(0, start, seqlen).view(1, seqlen, 1, -1))
            mask = window_mask(start, seqlen, self.n_prefix + self.args.max_context, self.args.sliding_window)
        # The prefix K/V go into the cache when a request starts (position 0); later calls rewrite only its
        # last row with the same values (the cache op rejects an empty write)
        n_write = self.n_prefix - (self.n_prefix - 1) * torch.sym_min(pos, 1)
        for i, layer in enumerate(self.layers):
            if self.args.sliding_window and self.args.sliding_layers[i]:
                h = layer(h, start, *local, n_write, mask)
            else:
                h = layer(h, start, cos, sin, n_write)
        return self.lm_head(self.norm(h[:, -1, :]))

    def prefix_kv(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(b.self_attn.prefix_k, b.self_attn.prefix_v) for b in self.layers]
