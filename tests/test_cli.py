"""The commands on real bundles, per target: export, verify, run, parity; pickles refused unread. The bad-input
matrix without exports is tests/test_bad_input.py."""
import json
import pickle
import shutil

import pytest
from conftest import MAX_CONTEXT
from tiny import make_soft_prompt_dir

from softfold.api import Bundle
from softfold.cli import main


class PickleBomb:
    """Unpickling this creates a marker file: proof that something unpickled the checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(params=["executorch", "onnx", "ort"])
def export(request):
    """argv for `softfold export`; every test using it runs once per target."""

    def argv(model, soft_prompt, out, *extra) -> list[str]:
        return ["export", "--model", str(model), "--soft-prompt", str(soft_prompt), "--out", str(out),
                "--max-context", str(MAX_CONTEXT), "--target", request.param, *extra]

    argv.target = request.param
    return argv


def assert_user_error(capsys, argv, *needles) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("softfold: error: "), err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


@pytest.fixture
def bad_prompt(soft_prompts, tmp_path):
    """A writable copy of a valid soft prompt, to break in one way."""
    return shutil.copytree(soft_prompts[("llama", 16)], tmp_path / "prompt")


def test_pickle_checkpoints_are_refused_unread(capsys, export, tiny_models, soft_prompts, bad_prompt, tmp_path):
    marker = tmp_path / "unpickled"
    (bad_prompt / "adapter_model.safetensors").unlink()
    (bad_prompt / "adapter_model.bin").write_bytes(pickle.dumps(PickleBomb(marker)))
    out = tmp_path / "out"
    assert_user_error(capsys, export(tiny_models["llama"], bad_prompt, out), "adapter_model.bin", "never unpickles")

    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(tiny_models["llama"] / "config.json", model)
    (model / "pytorch_model.bin").write_bytes(pickle.dumps(PickleBomb(marker)))
    assert_user_error(capsys, export(model, soft_prompts[("llama", 16)], out), "pytorch_model.bin", "safetensors")
    assert not marker.exists() and not out.exists()


def test_export_verify_and_run_commands(capsys, export, tiny_models, soft_prompts, tmp_path):
    out = tmp_path / "bundle"
    junit = tmp_path / "parity.xml"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# extra prompts\nName a red fruit.\n")
    assert main(export(tiny_models["qwen2"], soft_prompts[("qwen2", 16)], out, "--prompts", str(prompts),
                       "--junit", str(junit))) == 0
    assert "Name a red fruit." in (out / "parity.md").read_text()
    manifest = Bundle(out).manifest  # the typed view of manifest.json
    assert (manifest.backend, manifest.model.context_length, manifest.parity.passed) == (export.target, MAX_CONTEXT, True)
    assert 'failures="0"' in junit.read_text()
    capsys.readouterr()
    assert main(["verify", str(out)]) == 0
    assert "intact" in capsys.readouterr().out
    chat = ["run", str(out), "Tell me a story about the sea.", "--max-new-tokens", "8"]
    if export.target == "ort":  # an OrtSession in the app runs it; there is no chat engine for it here
        assert main(chat) == 2 and "OrtSession" in capsys.readouterr().err
    else:
        assert main(chat) == 0
        assert "PyTorchObserver" not in capsys.readouterr().out  # the runner's stats line is not the reply
        assert_user_error(capsys, ["run", str(out), "word " * MAX_CONTEXT], "tokens with its chat template", "shorten it")
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["parity"]["passed"] = False
        (out / "manifest.json").write_text(json.dumps(manifest))
        assert main(chat) == 0 and "FAILED its parity gate" in capsys.readouterr().err

    with open(out / "tokenizer.json", "a") as f:
        f.write(" ")
    assert main(["verify", str(out)]) == 1
    assert "tokenizer.json: checksum differs" in capsys.readouterr().err
    if export.target != "ort":  # run checks the checksums before loading, unless told not to
        assert_user_error(capsys, chat, "is damaged", "tokenizer.json")
        assert main([*chat, "--no-verify"]) == 0 and "not verified" in capsys.readouterr().err


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
