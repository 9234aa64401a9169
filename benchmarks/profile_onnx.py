"""Where an onnxruntime-genai bundle's decode time goes, per operator type, from ONNX Runtime's profiler.

    OMP_NUM_THREADS=1 python benchmarks/profile_onnx.py BUNDLE_DIR [BUNDLE_DIR ...] [--tokens 64] [--json OUT]

Each bundle (a directory with genai_config.json: softfold's or the onnxruntime-genai builder's) is copied by link
into a scratch directory whose genai_config turns ORT's session profiling on, then generates --tokens greedy tokens
after a fixed 40-token prompt through onnxruntime-genai. Reported per bundle: ms per decoded token by operator type
(the profile's kernel events of every run after the prefill), calls per token, and the prefill's total.
"""
import argparse
import gc
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

import onnxruntime_genai as og

PROMPT = list(range(100, 140))


def profile(bundle: Path, tokens: int) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "bundle"
        copy.mkdir()
        for f in bundle.iterdir():
            if f.is_file() and f.name != "genai_config.json":
                os.symlink(f.resolve(), copy / f.name)
        config = json.loads((bundle / "genai_config.json").read_text())
        options = config["model"]["decoder"].setdefault("session_options", {})
        options["enable_profiling"] = str(Path(scratch) / "ort_profile")
        (copy / "genai_config.json").write_text(json.dumps(config))
        model = og.Model(str(copy))
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(PROMPT) + tokens, do_sample=False)
        generator = og.Generator(model, params)
        generator.append_tokens(PROMPT)
        while not generator.is_done():
            generator.generate_next_token()
        del generator, params, model
        gc.collect()  # the session, destroyed, writes its profile
        trace = json.loads(next(Path(scratch).glob("ort_profile*.json")).read_text())
    return summarize(trace)


def summarize(trace: list[dict]) -> dict:
    """Kernel time per operator type; the first model run is the prefill, the rest are decode steps."""
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in trace if e.get("name") == "model_run")
    prefill_end = runs[0][1]
    decode_runs = len(runs) - 1
    ms, calls, prefill_ms = defaultdict(float), defaultdict(int), 0.0
    for e in trace:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        op = e["args"].get("op_name", "?")
        if e["ts"] < prefill_end:
            prefill_ms += e["dur"] / 1000
        else:
            ms[op] += e["dur"] / 1000
            calls[op] += 1
    step_ms = sum(end - start for start, end in runs[1:]) / 1000 / decode_runs
    ops = {op: {"ms_per_token": round(ms[op] / decode_runs, 3), "calls_per_token": round(calls[op] / decode_runs, 1)}
           for op in sorted(ms, key=ms.get, reverse=True)}
    return {"ms_per_token": round(step_ms, 3), "decode_runs": decode_runs, "prefill_kernels_ms": round(prefill_ms, 3),
            "outside_operators_ms": round(step_ms - sum(v["ms_per_token"] for v in ops.values()), 3), "operators": ops}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--json", type=Path, help="write every bundle's profile here")
    args = parser.parse_args()
    names = [b.name if [c.name for c in args.bundles].count(b.name) == 1 else str(b) for b in args.bundles]
    report = {name: profile(b, args.tokens) for name, b in zip(names, args.bundles)}
    for name, r in report.items():
        print(f"{name}: {r['ms_per_token']} ms per decoded token, {r['outside_operators_ms']} outside operators")
        for op, v in list(r["operators"].items())[:8]:
            print(f"  {op:28s} {v['ms_per_token']:7.3f} ms  x{v['calls_per_token']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
