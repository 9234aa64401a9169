"""`optimum-cli export softfold`: registered through optimum's own namespace, the same bundle as `softfold export`."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MAX_CONTEXT, PROMPTS

BIN = Path(sys.executable).parent


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=600)


def test_optimum_cli_writes_the_bundle_softfold_export_writes(tiny_models, soft_prompts, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    flags = ["--model", tiny_models["llama"], "--soft-prompt", soft_prompts[("llama", 16)], "--target", "onnx",
             "--max-context", str(MAX_CONTEXT), "--prompts", prompts]
    ours = run(BIN / "softfold", "export", *flags, "--out", tmp_path / "softfold")
    theirs = run(BIN / "optimum-cli", "export", "softfold", *flags, tmp_path / "optimum")
    assert ours.returncode == theirs.returncode == 0, (ours.stderr[-2000:], theirs.stderr[-2000:])
    files = sorted(p.name for p in (tmp_path / "softfold").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "optimum").iterdir()) and "model.onnx" in files
    manifests = [json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("softfold", "optimum")]
    assert manifests[0]["files"] == manifests[1]["files"]  # every file's sha256
    assert (tmp_path / "softfold" / "manifest.json").read_bytes() == (tmp_path / "optimum" / "manifest.json").read_bytes()


@pytest.mark.integration  # runs the real optimum-cli, a process that loads optimum, torch and softfold
def test_optimum_cli_keeps_softfolds_errors_and_exit_codes(tmp_path):
    result = run(BIN / "optimum-cli", "export", "softfold", "--soft-prompt", tmp_path / "absent", tmp_path / "out")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("softfold: error: soft prompt not found")
    assert not (tmp_path / "out").exists()
