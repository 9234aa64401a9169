"""The commands on real bundles, per target: export, verify, run, parity; pickles refused unread. The bad-input
matrix without exports is tests/test_bad_input.py."""
import io
import json
import pickle
import shutil
import sys

import pytest
from conftest import MAX_CONTEXT, assert_user_error

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


def test_the_parser_loads_no_torch():
    """`softfold --help` and a flag mistake answer at once: the commands import torch only when they run."""
    import subprocess

    code = "import sys; from softfold.cli.main import build_parser; build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
