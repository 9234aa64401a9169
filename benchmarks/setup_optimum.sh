#!/usr/bin/env bash
# optimum-executorch 1.1.0 pins transformers 5.0.0rc1, so it lives in its own virtualenv:
#   bash benchmarks/setup_optimum.sh [VENV]   then   softfold bench --optimum-cli VENV/bin/optimum-cli ...
set -euo pipefail
VENV="${1:-benchmarks/.venv-optimum}"
python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch 2.13.0 is the CPU wheel on local disk; the same executorch/torchao as softfold's
"$VENV/bin/python" -m pip install -q torch==2.13.0 executorch==1.5.1 torchao==0.18.0 optimum-executorch==1.1.0
echo "$VENV/bin/optimum-cli"
