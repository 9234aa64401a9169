"""Batched greedy decoding: each prompt's reply, left-padded among longer ones and after a shared prefix in the
cache, is the reply it gets alone."""
import torch

from softfold.inputs.base_model import read_model
from softfold.inputs.chat_template import chat_ids
from softfold.reference.greedy import greedy_batch, prefix_cache


def test_a_batch_replies_as_each_prompt_alone(tiny_models):
    base = read_model(tiny_models["llama"]).load()
    prompts = [chat_ids(base.tokenizer, p) for p in ("Hi", "Tell me a story about the sea and the moon.")]
    kv = prefix_cache(base.model, torch.randn(3, 64))
    together = greedy_batch(base.model, prompts, 6, stop=set(), kv=kv, keep_logits=True)
    alone = [greedy_batch(base.model, [p], 6, stop=set(), kv=kv)[0] for p in prompts]
    assert [r.tokens for r in together] == [r.tokens for r in alone]
    assert together[0].logits.shape == (6, base.config.vocab_size) and alone[0].logits is None
    assert len(kv) == base.config.num_hidden_layers and kv[0][0].shape[1] == 3  # [kv_heads, N, head_dim] per layer
