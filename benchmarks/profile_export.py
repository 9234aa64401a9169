"""Where `softfold export`'s wall time and memory go, stage by stage.

    python benchmarks/profile_export.py [--json OUT] -- EXPORT_ARGS...

EXPORT_ARGS are `softfold export`'s own (e.g. `--soft-prompt softfold/data/soft_prompts/smollm2-135m-safety --recipe 8da4w --out
W/sf8`). The export runs once, in this process, with its stages wrapped: loading, folding, rounding (the grid, GPTQ),
torchao's quantization, `torch.export`, ExecuTorch's edge conversion (its decomposition passes), XNNPACK partitioning
and preprocessing, emitting the program (ONNX: its export and quantizers), the gate's reference and its runtime. For
each stage: wall seconds (summed over its calls), resident memory when it first starts and last ends, and the peak
while it runs (sampled every 50 ms; a call inside another stage counts in that one only), then the process's own peak
(VmHWM), which the bench's export peak RSS reads too.
"""
import argparse
import json
import sys
import threading
import time
from pathlib import Path

import torch
from executorch.exir.program import _program

import softfold.cli.main as cli
from softfold.inputs.base_model import ModelSource
from softfold.pipeline import stages

STAGES = [  # (owner, attribute, stage): every call of owner.attribute is timed as that stage
    (ModelSource, "load", "load the model"),
    (stages, "build_folded_model", "fold the soft prompt"),
    (stages, "gptq_for", "round (grid, GPTQ)"),
    (stages, "quantize_executorch", "quantize (torchao)"),
    (torch.export, "export", "torch.export"),
    (_program, "_gen_edge_manager_for_partitioners", "to edge (decompositions)"),
    (_program.EdgeProgramManager, "to_backend", "partition + XNNPACK preprocess"),
    (_program.EdgeProgramManager, "to_executorch", "emit the program"),
    (stages, "export_onnx", "ONNX: torch.onnx export"),
    (stages, "quantize_onnx", "ONNX: ORT's quantizers"),
    (stages, "sample_reference", "gate: the reference's samples (PyTorch)"),
    (stages, "measure_engine", "gate: the runtime against them"),
]


def rss_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


class Sampler(threading.Thread):
    """Reads the RSS every `interval` seconds into the peak of the stage running."""

    def __init__(self, interval: float = 0.05):
        super().__init__(daemon=True)
        self.interval, self.running, self.stage = interval, True, None

    def run(self) -> None:
        while self.running:
            if (stage := self.stage) is not None:
                stage["peak_mib"] = max(stage["peak_mib"], rss_mib())
            time.sleep(self.interval)


def timed(stage: str, fn, sampler: Sampler, totals: dict):
    def wrapper(*args, **kwargs):
        if sampler.stage is not None:  # inside another stage (ExecuTorch exports small patterns as it lowers)
            return fn(*args, **kwargs)
        rss = rss_mib()
        entry = totals.setdefault(stage, {"stage": stage, "calls": 0, "s": 0.0, "rss_start_mib": rss, "peak_mib": rss})
        sampler.stage = entry
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            sampler.stage = None
            entry["calls"] += 1
            entry["s"] += time.perf_counter() - start
            entry["rss_end_mib"] = rss_mib()
    return wrapper


def profile(export_args: list[str]) -> dict:
    """Run the export with every stage of STAGES timed (in the order each first ran)."""
    sampler, totals = Sampler(), {}
    for owner, name, stage in STAGES:
        setattr(owner, name, timed(stage, getattr(owner, name), sampler, totals))
    sampler.start()
    start = time.perf_counter()
    code = cli.main(["export", *export_args])
    total = time.perf_counter() - start
    sampler.running = False
    stages = [{k: round(v, 1) if isinstance(v, float) else v for k, v in e.items()} for e in totals.values()]
    return {"exit_code": code, "total_s": round(total, 1), "peak_rss_mib": round(rss_mib("VmHWM")), "stages": stages}


def markdown(result: dict) -> str:
    lines = [f"export {result['total_s']:.1f} s, peak RSS {result['peak_rss_mib']} MiB (exit {result['exit_code']})",
             "", "| stage | s | RSS at start MiB | peak MiB | RSS at end MiB |", "|---|---|---|---|---|"]
    lines += [f"| {e['stage']} | {e['s']:.1f} | {e['rss_start_mib']:.0f} | {e['peak_mib']:.0f} | {e['rss_end_mib']:.0f} |"
              for e in result["stages"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s [--json OUT] -- EXPORT_ARGS...")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("export_args", nargs=argparse.REMAINDER, help="`softfold export`'s arguments, after --")
    args = parser.parse_args(argv)
    export_args = args.export_args[1:] if args.export_args[:1] == ["--"] else args.export_args
    result = profile(export_args)
    print(markdown(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
