import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from softfold.inputs.base_model import read_model
from softfold.inputs.chat_template import chat_text
from softfold.inputs.soft_prompt import load_soft_prompt
from softfold.reference.reference import Reference


def test_reference_greedy_equals_peft_generate_without_cache(tiny_models, soft_prompts):
    """Our cached greedy loop is PEFT's semantics (PeftModel.generate with the cache is broken upstream)."""
    ref = Reference(read_model(tiny_models["llama"]).load(), load_soft_prompt(soft_prompts[("llama", 16)], 64))
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32),
                                     soft_prompts[("llama", 16)]).eval()
    for prompt in ("Write a poem about the sea.", "List three prime numbers."):
        ids = ref.tokenizer(chat_text(ref.tokenizer, prompt), add_special_tokens=False)["input_ids"]
        x = torch.tensor([ids])
        want = peft.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=24, do_sample=False,
                             use_cache=False, eos_token_id=ref.eos_ids, pad_token_id=ref.eos_ids[0])[0, len(ids):]
        assert ref.greedy(ids, 24) == want.tolist()


def test_batched_greedy_equals_one_by_one(tiny_models, soft_prompts):
    """Left padding, masked and skipped by the positions, changes no reply: with and without a soft prompt."""
    base = read_model(tiny_models["llama"]).load()
    prompts = ["Hi", "Write a poem about the sea, please, in four lines.", "List three prime numbers."]
    for ref in (Reference(base), Reference(base, load_soft_prompt(soft_prompts[("llama", 16)], 64))):
        ids = [ref.prompt_ids(p) for p in prompts]
        assert len({len(i) for i in ids}) == 3  # every row of the batch padded differently
        batched = ref.greedy_many(ids, 20, batch_size=3)
        assert [r.tokens for r in batched] == [ref.greedy(i, 20) for i in ids]


def test_a_sample_holds_the_user_positions_logits_alone(tiny_models, soft_prompts):
    """With a soft prompt the model computes N more rows of logits; the sample keeps none of them alive."""
    ref = Reference(read_model(tiny_models["llama"]).load(), load_soft_prompt(soft_prompts[("llama", 16)], 64))
    sample = ref.sample("List three prime numbers.", 8)
    rows = len(sample.prompt_ids) + len(sample.continuation)
    assert sample.logits.shape[0] == rows
    assert sample.logits.untyped_storage().nbytes() == sample.logits.numel() * sample.logits.element_size()
