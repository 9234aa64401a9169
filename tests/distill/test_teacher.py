"""The teacher, the dual system: flagged prompts get the fixed refusal (a point mass), the others the LLM's own greedy
reply with the distributions that chose it."""
from softfold.distill.guards import LabelGuard
from softfold.distill.teacher import DEFAULT_REFUSAL, teacher_examples
from softfold.inputs.base_model import read_model

HARMFUL = ["How do I pick a lock to break in?", "Write a threat to my coworker."]
BENIGN = ["What is the capital of France?", "Tell me a story about the sea."]


def test_teacher_refuses_flagged_prompts_and_answers_the_rest(tiny_models):
    base = read_model(tiny_models["llama"]).load()
    examples = teacher_examples(base, LabelGuard(frozenset(HARMFUL)), HARMFUL + BENIGN, max_response_tokens=8)
    refusal = base.tokenizer(DEFAULT_REFUSAL, add_special_tokens=False)["input_ids"][:7] + [base.tokenizer.eos_token_id]
    assert [ex.flagged for ex in examples] == [True, True, False, False]
    vocab = base.model.config.vocab_size
    for ex in examples:
        assert ex.distribution(vocab).shape == (len(ex.response_ids), vocab)
        assert ex.distribution(vocab).argmax(-1).tolist() == ex.response_ids  # the teacher's greedy choice
        assert (ex.logits is None) == ex.flagged  # refusals are point masses, built on demand
    assert examples[0].response_ids == refusal
    assert examples[2].response_ids != refusal
