"""Where a bundle's decode time goes, per operator, from ExecuTorch's ETDump.

    OMP_NUM_THREADS=1 python benchmarks/profile_pte.py BUNDLE_DIR [BUNDLE_DIR ...] [--tokens 64] [--json OUT]

Each bundle's model.pte (or an optimum-executorch model.pte directory) runs one prefill of a fixed 40-token prompt, then --tokens greedy decode steps, with
ETDump profiling on. Reported per bundle: the time per decoded token by operator (XNNPACK's kernels by name,
ExecuTorch's portable and custom kernels as native calls), how many times each runs per token, and the share of
the step outside any operator (the method's own dispatch). No ETRecord is needed: the names are the runtime's.
"""
import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import torch
from executorch.devtools import Inspector
from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401  (llama::custom_sdpa, update_cache)
from executorch.kernels import quantized  # noqa: F401  (quantized_decomposed::embedding_byte)
from executorch.runtime import Runtime

PROMPT = list(range(100, 140))
WRAPPERS = {"Method::execute", "DELEGATE_CALL", "OPERATOR_CALL"}  # spans that contain the operators below


def profile(pte: Path, tokens: int) -> dict:
    """ms per decoded token and calls per token for each operator, plus the whole step."""
    program = Runtime.get().load_program(pte, enable_etdump=True)
    method = program.load_method("forward")
    method.execute((torch.tensor([PROMPT]), torch.tensor([0])))
    token = 200
    for i in range(tokens):
        logits = method.execute((torch.tensor([[token]]), torch.tensor([len(PROMPT) + i])))[0]
        token = int(logits.reshape(-1, logits.shape[-1])[-1].argmax())
    with tempfile.TemporaryDirectory() as scratch:
        etdump = Path(scratch) / "etdump.etdp"
        program.write_etdump_result_to_file(str(etdump), str(Path(scratch) / "debug.bin"))
        inspector = Inspector(etdump_path=str(etdump))
    ms, calls, prefill = defaultdict(float), defaultdict(int), defaultdict(float)
    for block in inspector.event_blocks:
        if block.name != "Execute":
            continue
        for event in block.events:
            if event.perf_data is None:
                continue
            raw = event.perf_data.raw
            per_run = len(raw) // (tokens + 1) or 1  # an instruction runs once per execution (prefill first)
            prefill[event.name] += sum(raw[:per_run])
            ms[event.name] += sum(raw[per_run:]) / tokens
            calls[event.name] += len(raw[per_run:]) / tokens
    step = ms.pop("Method::execute")
    operators = {name: {"ms_per_token": round(ms[name], 3), "calls_per_token": round(calls[name], 1),
                        "prefill_ms": round(prefill[name], 3)}
                 for name in sorted(ms, key=ms.get, reverse=True) if name not in WRAPPERS}
    covered = sum(v["ms_per_token"] for v in operators.values())
    return {"ms_per_token": round(step, 3), "prefill_ms": round(prefill["Method::execute"], 3),
            "delegate_calls_per_token": round(calls["DELEGATE_CALL"], 1),
            "outside_operators_ms": round(step - covered, 3), "operators": operators}


def markdown(name: str, result: dict, top: int = 12) -> str:
    lines = [f"### {name}: {result['ms_per_token']:.2f} ms per decoded token, "
             f"{result['delegate_calls_per_token']:.0f} delegate calls; prefill ({len(PROMPT)} tokens) "
             f"{result['prefill_ms']:.1f} ms", "",
             "| operator | ms / token | share | calls / token | prefill ms |", "|---|---|---|---|---|"]
    for op, v in list(result["operators"].items())[:top]:
        lines.append(f"| {op} | {v['ms_per_token']:.3f} | {v['ms_per_token'] / result['ms_per_token']:.1%} | "
                     f"{v['calls_per_token']:g} | {v['prefill_ms']:.1f} |")
    lines.append(f"| (dispatch, outside the operators) | {result['outside_operators_ms']:.3f} | "
                 f"{result['outside_operators_ms'] / result['ms_per_token']:.1%} | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundles", nargs="+", type=Path, help="bundle directories holding model.pte")
    parser.add_argument("--tokens", type=int, default=64, help="decode steps profiled (default: 64)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    results = {}
    for bundle in args.bundles:  # named by their directory, or by their path where two share a name
        name = bundle.name if [b.name for b in args.bundles].count(bundle.name) == 1 else str(bundle)
        results[name] = profile(bundle / "model.pte", args.tokens)
        print(markdown(name, results[name]) + "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
