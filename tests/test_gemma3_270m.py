"""The real Gemma 3 270M (`--model gemma3-270m`, fp32) end to end through both runtimes: a soft prompt made from a text
instruction (benchmarks/text_soft_prompt.py), exported with the shipped Gemma template and gated on parity.

Too slow for the suite (the first load dequantizes a 262k-vocabulary GGUF; each export lowers a 1 GB model): runs
only with SOFTFOLD_REAL_GEMMA=1 and the model's wheels installed (scripts/setup.sh).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from softfold.cli.main import main
from softfold.inputs.named_models import NAMED_MODELS, TEMPLATES

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.environ.get("SOFTFOLD_REAL_GEMMA") != "1",
                                 reason="the real Gemma 3 270M: set SOFTFOLD_REAL_GEMMA=1 (tens of minutes)")]
END_OF_TURN, EOS = 106, 1  # <end_of_turn>, <eos> in Gemma 3's vocabulary


@pytest.fixture(scope="module")
def soft_prompt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gemma") / "prompt"
    subprocess.run([sys.executable, str(ROOT / "benchmarks/text_soft_prompt.py"), "--model", "gemma3-270m",
                    "--out", str(out)], check=True)
    return out


@pytest.mark.parametrize("target", ["executorch", "onnx"])
def test_gemma3_270m_passes_its_gate(soft_prompt, tmp_path, target):
    bundle = tmp_path / target
    assert main(["export", "--model", "gemma3-270m", "--soft-prompt", str(soft_prompt), "--out", str(bundle),
                 "--target", target, "--max-context", "512"]) == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["parity"]["passed"]
    assert {EOS, END_OF_TURN} <= set(manifest["model"]["stop_ids"])
    assert "<end_of_turn>" in manifest["model"]["stop_strings"]
    assert manifest["prompt_format"]["generation_prefix"] == "<start_of_turn>model\n"
    template = (TEMPLATES / NAMED_MODELS["gemma3-270m"].chat_template).read_text()
    assert json.loads((bundle / "tokenizer_config.json").read_text())["chat_template"] == template
