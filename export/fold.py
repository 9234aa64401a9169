"""Fold a soft prompt into the compact model (docs/folding.md): as prefix K/V, or as virtual-token rows; and
steering vectors, as constants added after their blocks."""
import torch

from softfold.errors import UserError
from softfold.export.model import ModelArgs, Transformer
from softfold.export.quantize import RoundedWeight
from softfold.inputs.architecture import check_config
from softfold.native_io import muted, release_memory


def _rope_tables(hf_model, n_positions: int) -> tuple[torch.Tensor, ...]:
    """cos/sin for positions [0, n_positions), from the HF model's own rotary module (all rope types); then the
    local layers' cos/sin where the model has a table per layer type (Gemma 3)."""
    positions = torch.arange(n_positions).unsqueeze(0)
    probe = torch.zeros(1, dtype=torch.float32)
    if hf_model.config.model_type != "gemma3_text":
        cos, sin = hf_model.model.rotary_emb(probe, positions)
        return cos[0].float(), sin[0].float()
    tables = [t[0].float() for layer_type in ("full_attention", "sliding_attention")
              for t in hf_model.model.rotary_emb(probe, positions, layer_type)]
    return tables[0], tables[1], tables[2], tables[3]


def _transformer(args: ModelArgs, n_prefix: int, tables: tuple, n_virtual: int = 0, virtual_start: int = 0):
    return Transformer(args, n_prefix, *tables[:2], n_virtual, virtual_start, *tables[2:])


def fused_parts(name: str, args: ModelArgs) -> list[tuple[str, int]]:
    """Phi-3's fused projections by module name as (separate projection, rows): qkv_proj rows are [q; k; v],
    gate_up_proj rows [gate; up]. Empty for any other module."""
    q_rows, kv_rows = args.n_heads * args.head_dim, args.n_kv_heads * args.head_dim
    if name.endswith("self_attn.qkv_proj"):
        return [(name.removesuffix("qkv_proj") + p, r) for p, r in zip(("q_proj", "k_proj", "v_proj"),
                                                                           (q_rows, kv_rows, kv_rows))]
    if name.endswith("mlp.gate_up_proj"):
        return [(name.removesuffix("gate_up_proj") + p, args.hidden_dim) for p in ("gate_proj", "up_proj")]
    return []


def _split_fused(state: dict, args: ModelArgs) -> dict:
    out = {}
    for name, tensor in state.items():
        parts = fused_parts(name.removesuffix(".weight"), args)
        if not parts:
            out[name] = tensor
            continue
        for (part, _), rows in zip(parts, tensor.split([r for _, r in parts])):
            out[part + ".weight"] = rows
    return out


def split_fused_rounded(rounded: dict[str, RoundedWeight], config) -> dict[str, RoundedWeight]:
    """Rounded weights by HF module name (calibrate/) as the folded model's: a fused projection's rows split into
    the separate ones. Exact: GPTQ and the grid round every output row on its own."""
    args = ModelArgs.from_hf(config, 1)
    out = {}
    for name, w in rounded.items():
        parts = fused_parts(name, args)
        if not parts:
            out[name] = w
            continue
        rows = [r for _, r in parts]
        for i, (part, _) in enumerate(parts):
            out[part] = RoundedWeight(*(None if t is None else t.split(rows)[i].contiguous()
                                        for t in (w.q, w.scale, w.offset)))
    return out


def _load_weights(model: Transformer, hf_model) -> None:
    state = {k.removeprefix("model."): v.float() for k, v in hf_model.state_dict().items()}
    state = _split_fused(state, model.args)
    if model.args.arch == "gemma3_text":  # its norms compute x * (1 + w): store 1 + w, as fp32 (what it computes)
        state = {k: v + 1.0 if k.endswith("norm.weight") else v for k, v in state.items()}
    state.setdefault("lm_head.weight", state["embed_tokens.weight"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(("prefix_k", "prefix_v", "rope_cos", "rope_sin", "local_cos",
                                                      "local_sin", "virtual_embeddings"))]
    unexpected = [k for k in unexpected if "rotary_emb" not in k]
    if missing or unexpected:
        raise UserError(f"model weights do not match the {model.args.arch} layout: "
                        f"missing {missing[:3]}, unexpected {unexpected[:3]}")


def set_steering(model: Transformer, steering: dict[int, torch.Tensor] | None) -> None:
    """Constant vectors added to the output of the blocks they are keyed by (a control vector's direction.N after
    block N), fp32 buffers the quantizers never touch; None or empty: no block is steered."""
    for layer, vector in (steering or {}).items():
        model.layers[layer].steering = vector.detach().float().clone()


@torch.no_grad()
def build_folded_model(hf_model, soft_prompt: torch.Tensor | None, max_context: int,
                       steering: dict[int, torch.Tensor] | None = None) -> Transformer:
    """The export model: HF weights + the soft prompt's K/V computed once, in fp32, as constants (computed with the
    `steering` vectors added, as the reference computes the virtual tokens), + the steering vectors."""
    check_config(hf_model.config)
    n_prefix = 0 if soft_prompt is None else soft_prompt.shape[0]
    tables = _rope_tables(hf_model, n_prefix + max_context)
    # the prefix first, through an unfolded twin (same weights, empty prefix), freed before the model is built:
    # two fp32 copies of the weights at once would set the export's memory peak
    prefix_kv = []
    if n_prefix:
        prefix_kv = _prefix_kv(hf_model, soft_prompt, max_context, tables, steering)
        release_memory()
    model = _transformer(ModelArgs.from_hf(hf_model.config, max_context), n_prefix, tables)
    _load_weights(model, hf_model)
    set_steering(model, steering)
    for (pk, pv), (k, v) in zip(model.prefix_kv(), prefix_kv):
        pk.copy_(k)
        pv.copy_(v)
    return model.eval()


def _prefix_kv(hf_model, soft_prompt: torch.Tensor, max_context: int, tables: tuple,
               steering: dict[int, torch.Tensor] | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The soft prompt's K/V per layer, [1, N, kv_heads, head_dim], as the export model computes them."""
    n_prefix = soft_prompt.shape[0]
    twin = _transformer(ModelArgs.from_hf(hf_model.config, n_prefix + max_context), 0, tables)
    _load_weights(twin, hf_model)
    set_steering(twin, steering)
    with muted():  # ExecuTorch's eager custom ops log every call
        twin.forward_embeds(soft_prompt.float().unsqueeze(0), torch.tensor([0]))
    return [(b.self_attn.kv.k_cache[:, :n_prefix].clone(), b.self_attn.kv.v_cache[:, :n_prefix].clone())
            for b in twin.layers]


@torch.no_grad()
def build_virtual_token_model(hf_model, soft_prompt: torch.Tensor, virtual_start: int, max_context: int,
                              steering: dict[int, torch.Tensor] | None = None) -> Transformer:
    """The export model for virtual-token mode: ids virtual_start .. virtual_start + N - 1 are the soft prompt.

    The cache holds the N virtual tokens on top of `max_context` user positions.
    """
    check_config(hf_model.config)
    n_virtual = soft_prompt.shape[0]
    args = ModelArgs.from_hf(hf_model.config, n_virtual + max_context)
    model = _transformer(args, 0, _rope_tables(hf_model, n_virtual + max_context), n_virtual, virtual_start)
    _load_weights(model, hf_model)
    set_steering(model, steering)
    model.virtual_embeddings.copy_(soft_prompt.float())
    return model.eval()


@torch.no_grad()
def set_prefix_kv(model: Transformer, kv: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Replace the folded prefix K/V with `kv` (per layer [kv_heads, N, head_dim], post-RoPE, as HF caches them),
    e.g. K/V calibrated to a quantized recipe (calibrate/prefix.py). They stay fp32 constants."""
    slots = model.prefix_kv()
    _, n_prefix, kv_heads, head_dim = slots[0][0].shape
    expected = (kv_heads, n_prefix, head_dim)
    if len(kv) != len(slots) or any(tuple(t.shape) != expected for pair in kv for t in pair):
        got = f"{len(kv)} layers of {tuple(kv[0][0].shape)}" if kv else "no layers"
        raise UserError(f"prefix K/V do not fit this model: expected {len(slots)} layers of {expected} "
                        f"(kv heads, virtual tokens, head dim), got {got}")
    for (pk, pv), (k, v) in zip(slots, kv):
        pk.copy_(k.transpose(0, 1).unsqueeze(0))
        pv.copy_(v.transpose(0, 1).unsqueeze(0))
