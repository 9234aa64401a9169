"""`softfold parity` on real bundles: against the reference, against a released bundle, one reference of the same
model."""
import json

import pytest
from conftest import MAX_CONTEXT, assert_user_error
from tiny import make_soft_prompt_dir

from softfold.cli.main import main


def test_parity_command_regates_an_existing_bundle(capsys, export_tiny, tiny_models, soft_prompts, tmp_path):
    bundle = export_tiny("llama", 16, "executorch")
    argv = ["parity", str(bundle), "--model", str(tiny_models["llama"]), "--report", str(tmp_path / "ok")]
    assert main([*argv, "--soft-prompt", str(soft_prompts[("llama", 16)])]) == 0
    assert json.loads((tmp_path / "ok" / "parity.json").read_text())["passed"]
    # gated against another soft prompt (same shape), the bundle fails on its logits
    other = make_soft_prompt_dir(tmp_path / "other", tiny_models["llama"], 16, seed=99)
    argv[-1] = str(tmp_path / "bad")
    assert main([*argv, "--soft-prompt", str(other)]) == 1
    err = capsys.readouterr().err
    assert "not the soft prompt this bundle was exported with" in err and "rel_dlogit" in err


@pytest.mark.parametrize("target", ["executorch", "onnx"])
def test_parity_against_a_released_bundle(capsys, target, export_tiny, tiny_models, soft_prompts, tmp_path):
    """Bundle vs bundle (CI regressions): a second export of the same inputs passes with KL 0; an export of the
    wrong soft prompt fails with exit 1, a JUnit failure and its report."""
    released = export_tiny("llama", 16, target)

    def export_to(out, soft_prompt):
        argv = ["export", "--model", str(tiny_models["llama"]), "--soft-prompt", str(soft_prompt), "--out", str(out),
                "--max-context", str(MAX_CONTEXT), "--target", target]
        assert main(argv) in (0, 1)  # the gate against its own soft prompt passes; not what this test checks
        return out

    again = export_to(tmp_path / "again", soft_prompts[("llama", 16)])
    assert main(["parity", str(again), "--against", str(released), "--junit", str(tmp_path / "ok.xml")]) == 0
    report = json.loads((tmp_path / "again.parity" / "bundle_parity.json").read_text())
    assert report["passed"] and report["metrics"]["mean_kl"] == 0 and report["metrics"]["decision_agreement"] == 1
    assert report["metrics"]["text_match"] == 1 and len(report["prompts"]) == 10
    assert 'failures="0"' in (tmp_path / "ok.xml").read_text()
    # replies longer than the context holds: capped at it, by either engine
    assert main(["parity", str(again), "--against", str(released), "--max-new-tokens", str(4 * MAX_CONTEXT),
                 "--report", str(tmp_path / "long")]) == 0

    wrong = make_soft_prompt_dir(tmp_path / "wrong-prompt", tiny_models["llama"], 16, seed=99)
    broken = export_to(tmp_path / "broken", wrong)
    assert main(["parity", str(broken), "--against", str(released), "--junit", str(tmp_path / "bad.xml")]) == 1
    err = capsys.readouterr().err
    assert "failed: mean_kl" in err and "bundle_parity.md" in err
    report = json.loads((tmp_path / "broken.parity" / "bundle_parity.json").read_text())
    assert report["metrics"]["mean_kl"] > 0.1 and not report["passed"]
    assert '<failure message="mean_kl' in (tmp_path / "bad.xml").read_text()


def test_parity_takes_one_reference_of_the_same_model(capsys, export_tiny, soft_prompts):
    bundle, qwen2 = export_tiny("llama", 16, "executorch"), export_tiny("qwen2", 16, "executorch")
    capsys.readouterr()
    assert_user_error(capsys, ["parity", str(bundle), "--against", str(qwen2)],
                      "the bundles hold different models (architecture: qwen2")
    assert_user_error(capsys, ["parity", str(bundle)], "--soft-prompt DIR", "--against BUNDLE")
    assert_user_error(capsys, ["parity", str(bundle), "--against", str(bundle), "--soft-prompt",
                               str(soft_prompts[("llama", 16)])], "one of the two")
