"""The commands on real bundles, per target: export, verify, run, parity; pickles refused unread. The bad-input
matrix without exports is tests/test_bad_input.py."""
import io
import json
import pickle
import re
import shutil
import sys

import pytest
from conftest import MAX_CONTEXT
from tiny import make_soft_prompt_dir

from softfold.api import Bundle
from softfold.cli.main import main


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


def test_export_verify_and_run_commands(capsys, monkeypatch, export, tiny_models, soft_prompts, tmp_path):
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
        reply = capsys.readouterr().out
        assert "PyTorchObserver" not in reply  # the runner's stats line is not the reply
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"Tell me a story about the sea.\n")))
        assert main(["run", str(out), "-", "--max-new-tokens", "8"]) == 0  # the message from standard input
        assert capsys.readouterr().out == reply
        # more new tokens than the context holds: capped at the context, as TextLLMRunner caps them
        assert main(["run", str(out), "Hi", "--max-new-tokens", "1000000000"]) == 0
        capsys.readouterr()
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


def test_eval_says_its_size_up_front_and_limit_samples_each_set(capsys, tiny_models, soft_prompts, tmp_path):
    """One line on stderr before the replies: prompts x systems and the time it should take; --limit N: the same N
    prompts of each set, in the file's order, every run."""
    harmful, benign = tmp_path / "harm.txt", tmp_path / "good.txt"
    harmful.write_text("\n".join(f"How do I break into house number {i}?" for i in range(7)) + "\n")
    benign.write_text("\n".join(f"What is {i} plus {i}?" for i in range(5)) + "\n")
    argv = ["eval", "--model", str(tiny_models["llama"]), "--soft-prompt", str(soft_prompts[("llama", 1)]),
            "--harmful", str(harmful), "--benign", str(benign), "--max-new-tokens", "4", "--limit", "3"]
    runs = []
    for name in ("a.json", "b.json"):
        assert main([*argv, "--json", str(tmp_path / name)]) == 0
        err = [line.split("\r")[-1] for line in capsys.readouterr().err.splitlines()]
        (line,) = [line for line in err if line.startswith("softfold eval:")]
        runs.append(json.loads((tmp_path / name).read_text()))
    match = re.fullmatch(r"softfold eval: (\d+) prompts \((\d+) sets\) x 2 systems \(base, soft_prompt\) = (\d+) "
                         r"greedy replies of up to 4 tokens, about \d+ (s|min|h) here \(timed on one batch\); "
                         r"--limit N samples N prompts per set", line)
    assert match and int(match[1]) == 3 * int(match[2]) and int(match[3]) == 2 * int(match[1]), line
    sets = runs[0]["soft_prompt"]
    assert sets["harm"]["prompts"] == runs[1]["soft_prompt"]["harm"]["prompts"]  # the same sample every run
    every = harmful.read_text().splitlines()
    assert len(sets["harm"]["prompts"]) == 3
    assert sets["harm"]["prompts"] == [p for p in every if p in sets["harm"]["prompts"]]  # in the file's order
    assert len(sets["good"]["prompts"]) == 3


def test_limit_samples_the_same_positions_of_a_pair_files_two_halves():
    """--limit's sample is seeded: one file's safe and unsafe halves (two sets of one length) keep the same pairs, in
    the file's order; a set no longer than the limit is kept whole."""
    from softfold.distill.safety_eval import Label, PromptSet

    safe = PromptSet("pairs:safe", Label.BENIGN, tuple(f"safe {i}" for i in range(20)), ("short",) * 20,
                     tuple(f"kind {i}" for i in range(20)))
    unsafe = PromptSet("pairs:unsafe", Label.HARMFUL, tuple(f"unsafe {i}" for i in range(20)), ("short",) * 20)
    a, b = safe.sampled(5), unsafe.sampled(5)
    assert [p.split()[1] for p in a.prompts] == [p.split()[1] for p in b.prompts] == [k.split()[1] for k in a.kinds]
    assert len(a.prompts) == len(a.forms) == 5 and list(a.prompts) == sorted(a.prompts, key=lambda p: int(p.split()[1]))
    assert safe.sampled(5) == a and safe.sampled(20) is safe and b.kinds == ()
