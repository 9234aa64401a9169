"""Batched greedy decoding for Hugging Face causal LMs, with an optional fixed prefix in the cache.

The prefix (a soft prompt's K/V, computed once) sits first; each prompt follows it, left-padded to the
batch's longest, with padding masked out and skipped by the position ids, so every row sees exactly
what an unbatched run sees: the prefix at positions 0..N-1, its own tokens from N on.
"""
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm
from transformers.cache_utils import DynamicCache

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (keys, values), each [kv_heads, N, head_dim], post-RoPE


@dataclass(frozen=True)
class Continuation:
    tokens: list[int]  # greedy new tokens, ending with a stop id if one was produced
    logits: torch.Tensor | None  # [len(tokens), vocab] fp32: the distributions that chose them (keep_logits)


@torch.no_grad()
def prefix_cache(model: nn.Module, embeddings: torch.Tensor) -> KV:
    """The soft prompt's K/V in every layer, as the fp32 model computes them (what `fold.py` exports)."""
    cache = model(inputs_embeds=embeddings.float().unsqueeze(0), use_cache=True).past_key_values
    return [(layer.keys[0].clone(), layer.values[0].clone()) for layer in cache.layers]


def expand_cache(model: nn.Module, kv: KV, batch: int) -> DynamicCache:
    """A fresh cache holding `kv` once per row of a batch."""
    cache = DynamicCache(config=model.config)
    for i, (k, v) in enumerate(kv):
        cache.update(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1), i)
    return cache


@torch.no_grad()
def greedy_batch(model: nn.Module, prompts: list[list[int]], max_new_tokens: int, stop: set[int],
                 kv: KV | None = None, batch_size: int = 16, keep_logits: bool = False,
                 desc: str | None = None) -> list[Continuation]:
    """Greedy replies to token-id prompts, `batch_size` at a time, after the prefix `kv` when given."""
    n_prefix = kv[0][0].shape[1] if kv else 0
    out: list[Continuation] = []
    bar = tqdm(total=len(prompts), desc=desc, unit="prompt", leave=False, disable=desc is None)
    for i in range(0, len(prompts), batch_size):
        out += _greedy_chunk(model, prompts[i:i + batch_size], max_new_tokens, stop, kv, n_prefix, keep_logits)
        bar.update(min(batch_size, len(prompts) - i))
    bar.close()
    return out


def _greedy_chunk(model: nn.Module, chunk: list[list[int]], max_new_tokens: int, stop: set[int], kv: KV | None,
                  n_prefix: int, keep_logits: bool) -> list[Continuation]:
    def going(reply: list[int]) -> bool:
        return len(reply) < max_new_tokens and (not reply or reply[-1] not in stop)

    width = max(map(len, chunk))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in chunk])
    mask = torch.tensor([[1] * n_prefix + [0] * (width - len(p)) + [1] * len(p) for p in chunk])
    positions = n_prefix + (mask[:, n_prefix:].cumsum(-1) - 1).clamp_min(0)
    cache = expand_cache(model, kv, len(chunk)) if kv else DynamicCache(config=model.config)
    step = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1,
                 past_key_values=cache, use_cache=True)
    replies, rows = [[] for _ in chunk], [[] for _ in chunk]
    while True:
        for reply, row, logits in zip(replies, rows, step.logits[:, -1]):
            if going(reply):
                if keep_logits:
                    row.append(logits.float())
                reply.append(int(logits.argmax()))
        if not any(map(going, replies)):
            break
        mask = torch.cat([mask, torch.ones(len(chunk), 1, dtype=mask.dtype)], 1)
        positions = positions[:, -1:] + 1
        step = model(input_ids=torch.tensor([r[-1:] for r in replies]), attention_mask=mask,
                     position_ids=positions, past_key_values=step.past_key_values, use_cache=True)
    return [Continuation(r, torch.stack(w) if keep_logits else None) for r, w in zip(replies, rows)]
