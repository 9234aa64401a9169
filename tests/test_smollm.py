"""Acceptance on the embedded default: SmolLM2-135M-Instruct + a 100-token soft prompt, fp32.

The slowest tests here (minutes): real exports through the whole pipeline, one per target, each
gated on 10 chat prompts with 64 greedy tokens through the phone's engine.
"""
import json

import pytest

from softfold.load import default_model_path, load_base
from softfold.pipeline import ExportOptions, Target, export_bundle
from softfold.softprompt import SAFETY_INIT_TEXT, text_initialized_prompt


@pytest.fixture(scope="module")
def soft_prompt(tmp_path_factory):
    out = tmp_path_factory.mktemp("smollm") / "prompt"
    return text_initialized_prompt(load_base(default_model_path()), SAFETY_INIT_TEXT, 100, out)


@pytest.mark.parametrize("target", [Target.EXECUTORCH, Target.ONNX])
def test_smollm_engine_greedy_matches_peft_on_chat_prompts(soft_prompt, tmp_path, target):
    """TextLLMRunner (.pte) / onnxruntime-genai (.onnx) greedy == PEFT greedy on >= 9 of 10 prompts."""
    bundle = tmp_path / "bundle"
    report = export_bundle(ExportOptions(model=default_model_path(), soft_prompt=soft_prompt, out=bundle,
                                         target=target, max_context=512))
    assert len(report.prompts) == 10
    matches = sum(r.runner_match for r in report.prompts)
    assert matches >= 9, [(r.prompt, r.reference_text, r.runner_text) for r in report.prompts if not r.runner_match]
    assert report.metrics["rel_dlogit"] <= 1e-4
    assert report.passed, report.failures
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["soft_prompt"]["num_virtual_tokens"] == 100
    assert manifest["model"]["stop_strings"] == ["<|im_end|>"] and manifest["model"]["eos_ids"] == [2]
