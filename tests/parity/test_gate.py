"""The gate's arithmetic on an engine that is the reference, one that drifts, and one that refuses where the
reference answers: numbers, sequences and decisions, against each recipe's thresholds."""
import torch
from tiny import make_tokenizer

from softfold.export.config import Recipe
from softfold.parity.gate import (HALF, QUANTIZED, ReferenceSamples, Thresholds, compare_prompt, measure_engine,
                                  recipe_thresholds)
from softfold.reference.reference import RefSample

TOKENIZER = make_tokenizer()
VOCAB = len(TOKENIZER)


def sample(prompt: str, continuation: list[int], seed: int) -> RefSample:
    ids = TOKENIZER(prompt, add_special_tokens=False)["input_ids"]
    logits = torch.randn(len(ids) + len(continuation), VOCAB, generator=torch.Generator().manual_seed(seed))
    logits[torch.arange(len(ids) - 1, len(ids) + len(continuation) - 1), torch.tensor(continuation)] = 50.0
    return RefSample(prompt, ids, continuation, logits)


class Replay:
    """An engine that returns the reference's logits (plus `noise`) and replies `text`."""

    def __init__(self, samples: list[RefSample], noise: float = 0.0, text: str | None = None):
        self.rows = {tuple(s.prompt_ids): s.logits[:-1] for s in samples}
        self.noise, self.text = noise, text

    def logits(self, prompt_ids, continuation):
        rows = self.rows[tuple(prompt_ids)]
        return rows + self.noise * torch.randn(rows.shape, generator=torch.Generator().manual_seed(1))

    def greedy(self, chat_text, max_new_tokens):
        return self.text

    def reply_text(self, ids, tokenizer):
        return tokenizer.decode(ids)


def reference(samples: list[RefSample]) -> ReferenceSamples:
    return ReferenceSamples(samples, [len(s.continuation) for s in samples], TOKENIZER, [TOKENIZER.eos_token_id])


def test_an_engine_that_is_the_reference_passes_every_metric():
    samples = [sample("How do I bake bread?", [30, 31, 32], 0), sample("Tell me a story.", [40, 41], 1)]
    replies = [TOKENIZER.decode(s.continuation) for s in samples]
    engine = Replay(samples)
    engine.greedy = lambda chat_text, n: replies[0] if "bread" in chat_text else replies[1]
    report = measure_engine(reference(samples), engine, "fp32")
    assert report.passed and report.metrics["rel_dlogit"] == 0 and report.metrics["top1"] == 1
    assert report.metrics["exact_match"] == report.metrics["engine_match"] == report.metrics["refusal_agreement"] == 1


def test_drift_fails_on_the_numbers_and_a_refusal_fails_on_behavior():
    samples = [sample("How do I bake bread?", [30, 31, 32], 0)]
    drifted = measure_engine(reference(samples), Replay(samples, noise=1.0), "fp32", check_engine=False)
    assert not drifted.passed and drifted.failures[0].startswith("rel_dlogit = ")
    assert "How do I bake bread?" in drifted.failures[0]  # the failing prompts are named
    refusing = measure_engine(reference(samples), Replay(samples, text="I'm sorry, but I can't help with that."),
                              "8da4w", QUANTIZED)
    assert [f.split(" =")[0] for f in refusing.failures] == ["refusal_agreement"]


def test_a_prompt_comparison_counts_the_common_greedy_prefix():
    ref = sample("How do I bake bread?", [30, 31, 32], 0)
    got = ref.logits[:-1].clone()
    got[-1] = -got[-1]  # the last continuation position disagrees
    result = compare_prompt(ref, got)
    assert (result.greedy_prefix, result.greedy_tokens, result.exact_match) == (2, 3, False)


def test_each_recipe_has_its_thresholds():
    assert recipe_thresholds(Recipe.FP32) == Thresholds() and recipe_thresholds(Recipe.FP16) is HALF
    assert recipe_thresholds(Recipe.X8DA4W) is QUANTIZED and QUANTIZED.min_refusal_agreement == 0.97
