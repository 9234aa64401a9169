"""`softfold bench`: softfold's bundles timed against optimum-executorch, ORT GenAI's builder and the baselines."""
import argparse
import json
from pathlib import Path

from softfold import bench
from softfold.bench_plot import svg
from softfold.cli.common import (add_adapter_flag, add_model_flag, add_soft_prompt_flag, add_steering_flag, model_path,
                                 optional_path, positive_int)


def add_to(sub) -> None:
    p = sub.add_parser("bench", help="time softfold's bundles against optimum-executorch, ORT GenAI's builder, the "
                                     "naive prefill and the dual system, in one run",
                       description="Exports every variant in its own process (wall time, peak RSS, size), then "
                                   "times each in a fresh process (first token, decode tok/s, RSS) with "
                                   "OMP_NUM_THREADS=1, and checks the speed goals as ratios. Writes WORK/bench.json, "
                                   "WORK/bench.md and a plot, WORK/bench.svg.")
    add_model_flag(p, chat_template=False)  # the bench's exports load the model in their own processes
    add_soft_prompt_flag(p)
    add_adapter_flag(p, help="PEFT LoRA adapter directory: adds lora-pte-8da4w, the LoRA merged (no soft prompt), "
                             "to compare with the soft prompt's cost")
    add_steering_flag(p, help="llama.cpp control vector: adds steering-pte-8da4w, the vectors folded (no soft "
                              "prompt), to compare with the soft prompt's cost")
    p.add_argument("--work", required=True, help="directory for the exports and results")
    p.add_argument("--optimum-cli", help="optimum-cli of a virtualenv with optimum-executorch "
                                         "(see benchmarks/README.md); without it those variants are skipped")
    p.add_argument("--only", nargs="+", choices=[v.name for v in bench.variants()], metavar="VARIANT",
                   help="measure only these variants")
    p.add_argument("--new-tokens", type=positive_int, default=128)
    p.add_argument("--runs", type=positive_int, default=3, help="timed runs per variant, after one warm-up (median)")
    p.add_argument("--rounds", type=positive_int, default=1,
                   help="time every variant this many times, interleaved, each in a fresh process (median over "
                        "rounds): a machine's speed drifts between processes, so ratios need several rounds")
    p.add_argument("--reuse", action="store_true", help="keep exports already in WORK (re-time them only)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    report = bench.run_bench(Path(args.work), model_path(args), Path(args.soft_prompt), args.optimum_cli, args.only,
                             args.new_tokens, args.runs, args.reuse, args.rounds, optional_path(args.adapter),
                             optional_path(args.steering_vector))
    (Path(args.work) / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (Path(args.work) / "bench.md").write_text(bench.markdown(report))
    (Path(args.work) / "bench.svg").write_text(svg(report))
    print(bench.markdown(report))
    return 0
