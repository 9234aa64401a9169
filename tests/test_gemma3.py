"""Gemma 3's sliding window over the folded soft prompt, both sides of the boundary, through both runtimes.

The tiny Gemma 3 (tests/tiny.py) has a local layer that sees 24 positions, then a global one. After the 16-token soft
prompt, the chat prompt below (29 tokens) pushes the soft prompt's first position out of the local window at user
position 8 and its last at 23: the bundles must stop attending to it exactly where the PEFT reference does.
"""
import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import run_session
from executorch.runtime import Runtime
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from softfold.export.fold import build_virtual_token_model
from softfold.native_io import muted

N, WINDOW = 16, 24
FIRST_OUT, ALL_OUT = WINDOW - N, WINDOW - 1  # user positions where the soft prompt starts / ends leaving the window
PROMPT = "List three prime numbers and explain them."


def user_logits(model_dir, prompt_dir, **config) -> tuple[torch.Tensor, list[int]]:
    """PEFT's logits at every user position (no cache: PeftModel's forward), and the prompt's ids."""
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **config)
    tok = AutoTokenizer.from_pretrained(model_dir)
    text = tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=False)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        return PeftModel.from_pretrained(base, prompt_dir).eval()(input_ids=torch.tensor([ids])).logits[0, N:], ids


def test_the_window_cuts_the_soft_prompt_inside_the_prompt(tiny_models, soft_prompts):
    """The reference itself: identical to an unwindowed model until the soft prompt starts leaving, different after."""
    want, ids = user_logits(tiny_models["gemma3"], soft_prompts[("gemma3", N)])
    wide, _ = user_logits(tiny_models["gemma3"], soft_prompts[("gemma3", N)], sliding_window=4096)
    assert len(ids) > ALL_OUT + 1
    assert (want[:FIRST_OUT] - wide[:FIRST_OUT]).abs().max() <= 1e-5 * want.abs().max()
    assert ((want[FIRST_OUT:] - wide[FIRST_OUT:]).abs().amax(-1) > 1e-3).all()


@pytest.mark.parametrize("target", ["executorch", "onnx"])
def test_bundles_leave_the_soft_prompt_where_peft_does(export_tiny, tiny_models, soft_prompts, target):
    """Every user position in the three stretches: all of the soft prompt in the window, part of it, none of it."""
    want, ids = user_logits(tiny_models["gemma3"], soft_prompts[("gemma3", N)])
    bundle = export_tiny("gemma3", N, target)
    if target == "executorch":
        method = Runtime.get().load_program(str(bundle / "model.pte")).load_method("forward")
        got = torch.stack([method.execute([torch.tensor([[t]]), torch.tensor([i])])[0][0] for i, t in enumerate(ids)])
    else:  # prefill the first 12 tokens (across the first boundary), then one at a time
        got = torch.from_numpy(run_session(ort.InferenceSession(str(bundle / "model.onnx")), ids, split=12))
    scale = want.abs().max()
    for stretch in (slice(0, FIRST_OUT), slice(FIRST_OUT, ALL_OUT + 1), slice(ALL_OUT + 1, None)):
        assert (got[stretch] - want[stretch]).abs().max() <= 1e-4 * scale, stretch
        assert torch.equal(got[stretch].argmax(-1), want[stretch].argmax(-1)), stretch
    assert np.isfinite(got.numpy()).all()


def test_virtual_token_rows_are_not_scaled(tiny_models, soft_prompts):
    """Virtual-token folding (eager): the soft prompt's rows skip the sqrt(dim) scaling token embeddings get, as PEFT
    puts them after the embedding module; the virtual ids run through the local window like any token."""
    want, ids = user_logits(tiny_models["gemma3"], soft_prompts[("gemma3", N)])
    hf = AutoModelForCausalLM.from_pretrained(tiny_models["gemma3"], dtype=torch.float32)
    rows = PeftModel.from_pretrained(hf, soft_prompts[("gemma3", N)]).get_prompt(batch_size=1)[0].detach()
    vocab = hf.config.vocab_size
    model = build_virtual_token_model(hf, rows, virtual_start=vocab, max_context=64)
    tokens = list(range(vocab, vocab + N)) + ids
    with muted(), torch.no_grad():
        got = torch.stack([model(torch.tensor([[t]]), torch.tensor([i]))[0] for i, t in enumerate(tokens)])[N:]
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()


