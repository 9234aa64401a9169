"""Bad input: one line naming the input and the fix, exit code 2, and no bundle left behind."""
import json
import pickle
import shutil

import pytest
import torch
from conftest import MAX_CONTEXT
from tiny import make_soft_prompt_dir
from safetensors.torch import save_file

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


def test_missing_model(capsys, export, bad_prompt, tmp_path):
    out = tmp_path / "out"
    assert_user_error(capsys, export(tmp_path / "nope", bad_prompt, out), "model not found", "nope")
    assert not out.exists()


def test_missing_soft_prompt_files(capsys, export, tiny_models, bad_prompt, tmp_path):
    (bad_prompt / "adapter_model.safetensors").unlink()
    out = tmp_path / "out"
    assert_user_error(capsys, export(tiny_models["llama"], bad_prompt, out), "no adapter_model.safetensors")
    assert_user_error(capsys, export(tiny_models["llama"], tmp_path / "absent", out), "soft prompt not found")
    assert not out.exists()


def test_hidden_size_mismatch(capsys, export, tiny_models, bad_prompt, tmp_path):
    save_file({"prompt_embeddings": torch.randn(16, 32)}, bad_prompt / "adapter_model.safetensors")
    out = tmp_path / "out"
    assert_user_error(capsys, export(tiny_models["llama"], bad_prompt, out), "hidden size 32", "model's is 64")
    assert not out.exists()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_soft_prompt(capsys, export, tiny_models, bad_prompt, tmp_path, bad):
    emb = torch.randn(16, 64)
    emb[3, 5] = bad
    save_file({"prompt_embeddings": emb}, bad_prompt / "adapter_model.safetensors")
    out = tmp_path / "out"
    assert_user_error(capsys, export(tiny_models["llama"], bad_prompt, out), "NaN or Inf")
    assert not out.exists()


def test_not_prompt_tuning(capsys, export, tiny_models, bad_prompt, tmp_path):
    config = json.loads((bad_prompt / "adapter_config.json").read_text())
    config["peft_type"] = "LORA"
    (bad_prompt / "adapter_config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    assert_user_error(capsys, export(tiny_models["llama"], bad_prompt, out), "LORA adapter", "PROMPT_TUNING")
    assert not out.exists()


def test_unsupported_architecture(capsys, export, tiny_models, bad_prompt, tmp_path):
    model = shutil.copytree(tiny_models["llama"], tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    config["model_type"], config["architectures"] = "gpt2", ["GPT2LMHeadModel"]
    (model / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    assert_user_error(capsys, export(model, bad_prompt, out), "'gpt2' is not supported", "llama")
    assert not out.exists()


def test_existing_output_needs_force(capsys, export, tiny_models, soft_prompts, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_user_error(capsys, export(tiny_models["llama"], soft_prompts[("llama", 1)], out), "already exists", "--force")
    assert (out / "keep.txt").read_text() == "mine"


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
    assert 'failures="0"' in junit.read_text()
    capsys.readouterr()
    assert main(["verify", str(out)]) == 0
    assert "intact" in capsys.readouterr().out
    chat = ["run", str(out), "Tell me a story about the sea.", "--max-new-tokens", "8"]
    if export.target == "ort":  # an OrtSession in the app runs it; there is no chat engine for it here
        assert main(chat) == 2 and "OrtSession" in capsys.readouterr().err
    else:
        assert main(chat) == 0

    with open(out / "tokenizer.json", "a") as f:
        f.write(" ")
    assert main(["verify", str(out)]) == 1
    assert "tokenizer.json: checksum differs" in capsys.readouterr().err


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
