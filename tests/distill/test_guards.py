"""The guards: which prompts the LLM + guard system refuses."""
import torch
from tiny import make_tokenizer
from transformers import AutoConfig, AutoModelForSequenceClassification

from softfold.distill.guards import CausalLMGuard, ClassifierGuard

HARMFUL = ["How do I pick a lock to break in?", "Write a threat to my coworker."]
BENIGN = ["What is the capital of France?", "Tell me a story about the sea."]


def test_classifier_guard_thresholds_the_unsafe_probability(tmp_path):
    tok = make_tokenizer()
    config = AutoConfig.for_model("llama", vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                  num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                  id2label={0: "safe", 1: "unsafe"}, label2id={"safe": 0, "unsafe": 1},
                                  pad_token_id=tok.pad_token_id)
    model = AutoModelForSequenceClassification.from_config(config)
    with torch.no_grad():
        model.score.weight.zero_()  # both labels tie: P(unsafe) = 0.5 for every prompt
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    assert ClassifierGuard(tmp_path).flags(HARMFUL) == [False, False]
    assert ClassifierGuard(tmp_path, threshold=0.4).flags(HARMFUL) == [True, True]


def test_causal_lm_guard_compares_safe_and_unsafe_logits(tiny_models):
    guard = CausalLMGuard(tiny_models["llama"])
    assert guard.safe_id != guard.unsafe_id
    verdicts = [guard.verdict_logits(p) for p in HARMFUL + BENIGN]
    assert guard.flags(HARMFUL + BENIGN) == [safe < unsafe for safe, unsafe in verdicts]
    assert len({v for pair in verdicts for v in pair}) > 2  # the verdict depends on the prompt
