"""The folded eager model against PEFT's forward, before any lowering."""
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from softfold.export.fold import build_folded_model
from softfold.inputs.soft_prompt import load_soft_prompt


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("n", [1, 16])
def test_folded_model_matches_peft_at_every_position(tiny_models, soft_prompts, arch, n):
    base = AutoModelForCausalLM.from_pretrained(tiny_models[arch], dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_models[arch])
    prompt = load_soft_prompt(soft_prompts[(arch, n)], base.config.hidden_size)
    folded = build_folded_model(base, prompt.embeddings, max_context=64)
    ref = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_models[arch], dtype=torch.float32),
                                    soft_prompts[(arch, n)]).eval()
    ids = torch.tensor([tok("Write a poem about the moon and the stars.")["input_ids"]])
    with torch.no_grad():
        want = ref(input_ids=ids).logits[0, n:]
        stepwise = torch.stack([folded(ids[:, t:t + 1], torch.tensor([t]))[0] for t in range(ids.shape[1])])
        prefill = folded(ids, torch.tensor([0]))[0]
    tol = 1e-4 * want.abs().max()
    assert (stepwise - want).abs().max() <= tol
    assert (prefill - want[-1]).abs().max() <= tol
    assert torch.equal(stepwise.argmax(-1), want.argmax(-1))


def test_prefix_kv_is_what_the_soft_prompt_changes(tiny_models, soft_prompts):
    base = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32).eval()
    prompt = load_soft_prompt(soft_prompts[("llama", 16)], base.config.hidden_size)
    folded = build_folded_model(base, prompt.embeddings, max_context=32)
    plain = build_folded_model(base, None, max_context=32)
    x = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        assert not torch.allclose(folded(x, torch.tensor([0])), plain(x, torch.tensor([0])), atol=1e-3)
    k, v = folded.prefix_kv()[0]
    assert k.shape == (1, 16, base.config.num_key_value_heads, 16) and torch.isfinite(k).all() and v.abs().sum() > 0
