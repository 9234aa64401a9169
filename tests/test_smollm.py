"""Acceptance on the embedded default: SmolLM2-135M-Instruct + a 100-token soft prompt, fp32 .pte.

The slowest test here (a few minutes): one real export through the whole pipeline.
"""
import json

import pytest

from softfold.load import default_model_path, load_base
from softfold.pipeline import ExportOptions, export_bundle
from softfold.softprompt import SAFETY_INIT_TEXT, text_initialized_prompt


@pytest.fixture(scope="module")
def smollm_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("smollm")
    prompt = text_initialized_prompt(load_base(default_model_path()), SAFETY_INIT_TEXT, 100, root / "prompt")
    report = export_bundle(ExportOptions(model=default_model_path(), soft_prompt=prompt, out=root / "bundle",
                                         max_context=512))
    return root / "bundle", report


def test_smollm_runner_greedy_matches_peft_on_chat_prompts(smollm_bundle):
    bundle, report = smollm_bundle
    assert len(report.prompts) == 10
    matches = sum(r.runner_match for r in report.prompts)  # TextLLMRunner text == PEFT greedy text, 64 tokens
    assert matches >= 9, [(r.prompt, r.reference_text, r.runner_text) for r in report.prompts if not r.runner_match]
    assert report.metrics["rel_dlogit"] <= 1e-4
    assert report.passed, report.failures
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["soft_prompt"]["num_virtual_tokens"] == 100
    assert manifest["model"]["stop_strings"] == ["<|im_end|>"] and manifest["model"]["eos_ids"] == [2]
