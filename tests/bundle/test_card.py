"""The model card each bundle carries: what the base model's files state, unknown where they state nothing; the gate's
verdict; the soft prompt's safety evaluation."""
import json

from huggingface_hub import ModelCard

from softfold.bundle.card import app_readme
from softfold.inputs.provenance import eval_summary

MANIFEST = {
    "backend": "onnx", "recipe": "int4",
    "model": {"architecture": "qwen2", "context_length": 512, "stop_ids": [2], "stop_strings": ["</s>"]},
    "soft_prompt": {"num_virtual_tokens": 16, "folding": "prefix-kv", "sha256": "ab" * 32},
    "parity": {"passed": False, "prompts": 10, "mean_kl": 0.31, "top1": 0.7, "exact_match": 0.0,
               "refusal_agreement": 0.9},
}


def test_card_without_facts_says_unknown_and_reports_a_failed_gate():
    text = app_readme(MANIFEST)
    card = ModelCard(text).data
    assert (card.license, card.library_name, card.pipeline_tag, card.base_model) == (
        "unknown", "onnxruntime-genai", "text-generation", None)
    assert {"softfold", "soft-prompt", "onnx", "int4", "qwen2"} <= set(card.tags)
    assert "## Parity with the PyTorch reference: FAILED" in text and "| refusal decisions equal (phone engine) | 0.90 |" in text
    assert "Safety evaluation" not in text


def test_card_carries_the_soft_prompt_safety_eval(tmp_path):
    evaluation = {"soft_prompt": {"harmbench_standard": {"label": "harmful", "correct_rate": 0.96512, "prompts": ["a"] * 200},
                                  "mine": {"label": "benign", "correct_rate": 0.5, "prompts": ["b"] * 4}}}
    (tmp_path / "eval.json").write_text(json.dumps(evaluation))
    summary = eval_summary(tmp_path)
    assert summary == {"harmbench_standard": {"label": "harmful", "prompts": 200, "correct_rate": 0.9651},
                       "mine": {"label": "benign", "prompts": 4, "correct_rate": 0.5}}
    manifest = {**MANIFEST, "model": {**MANIFEST["model"], "base_model": "org/m", "license": "apache-2.0"},
                "soft_prompt": {**MANIFEST["soft_prompt"], "safety_eval": summary}}
    text = app_readme(manifest)
    assert ModelCard(text).data.base_model == "org/m"
    assert "| harmbench_standard | harmful | 200 | 96.5% refused |" in text and "| mine | benign | 4 | 50.0% answered |" in text
    (tmp_path / "eval.json").write_text("{not json")
    assert eval_summary(tmp_path) is None
