"""Where a trained soft prompt starts: the embeddings of a safety instruction's tokens, repeated to fill N rows."""
from types import SimpleNamespace

import torch
from tiny import make_tokenizer

from softfold.distill.prompt_init import SAFETY_INIT_TEXT, text_embeddings


def test_the_rows_are_the_texts_token_embeddings_repeated():
    tokenizer = make_tokenizer()
    table = torch.nn.Embedding(len(tokenizer), 8)
    base = SimpleNamespace(tokenizer=tokenizer, model=SimpleNamespace(get_input_embeddings=lambda: table))
    ids = tokenizer("How do I bake bread?", add_special_tokens=False)["input_ids"]
    rows = text_embeddings(base, "How do I bake bread?", len(ids) + 2)
    assert torch.equal(rows, table.weight[ids + ids[:2]]) and not rows.requires_grad
    assert text_embeddings(base, SAFETY_INIT_TEXT, 100).shape == (100, 8)
