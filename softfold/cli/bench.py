"""`softfold bench`: softfold's bundles timed against optimum-executorch, ORT GenAI's builder and the baselines."""
import argparse
import json
from pathlib import Path

from softfold.bench.harness import run_bench
from softfold.bench.plot import svg
from softfold.bench.report import markdown
from softfold.bench.variants import variants
from softfold.cli.flags import (add_adapter, add_model, add_soft_prompt, add_steering_vector, model_path, optional_path,
                                positive_int)
from softfold.files import OutputKind, check_out


def add_to(sub) -> None:
    p = sub.add_parser("bench", help="time softfold's bundles against optimum-executorch, ORT GenAI's builder, the "
                                     "naive prefill and the dual system, in one run",
                       description="Export every variant in its own process, time each in fresh processes "
                                   "(OMP_NUM_THREADS=1), and check the speed goals as ratios; writes WORK/bench.json, "
                                   "bench.md and bench.svg (benchmarks/README.md). --adapter and --steering-vector "
                                   "add the baselines' variants.")
    add_model(p, chat_template=False)  # the bench's exports load the model in their own processes
    add_soft_prompt(p, required=True)
    add_adapter(p)
    add_steering_vector(p)
    p.add_argument("--work", required=True, metavar="DIR",
                   help="directory for the exports and results: a new one, or a previous bench's")
    p.add_argument("--optimum-cli", metavar="PATH",
                   help="optimum-cli with optimum-executorch (benchmarks/README.md); without it, those are skipped")
    p.add_argument("--only", nargs="+", choices=[v.name for v in variants()], metavar="VARIANT",
                   help="measure only these variants")
    p.add_argument("--new-tokens", type=positive_int, default=128, metavar="N",
                   help="new tokens each timed reply generates, exactly (default: 128)")
    p.add_argument("--runs", type=positive_int, default=3, metavar="N",
                   help="timed runs per variant, after one warm-up: their median (default: 3)")
    p.add_argument("--rounds", type=positive_int, default=1, metavar="N",
                   help="time every variant N times, interleaved, each in a fresh process: the median (default: 1)")
    p.add_argument("--reuse", action="store_true", help="keep the exports already in WORK (re-time them only)")
    p.set_defaults(func=handle)


BENCH_FILES = ("bench.json", "bench.partial.json", "hf")  # what a previous bench left in its --work
BENCH_WORK = OutputKind("softfold bench work directory", lambda d: any((d / f).exists() for f in BENCH_FILES),
                        " or ".join(BENCH_FILES), replace_flag=None,
                        fix="pass a new directory, or the --work of a previous bench")


def check_inputs(args: argparse.Namespace) -> None:
    """The soft prompt, adapter and control vector checked against the model, and --work, in seconds: the bench's
    exports run in processes of their own, whose errors would come back as skipped variants."""
    # reading the inputs loads torch: when the command runs, not for --help
    from softfold.inputs.read import read_inputs

    read_inputs(model_path(args), None, args.soft_prompt, args.adapter, args.steering_vector)
    paths = [p for p in (model_path(args), args.soft_prompt, args.adapter, args.steering_vector) if p]
    check_out(Path(args.work), paths, kind=BENCH_WORK, flag="--work")


def handle(args: argparse.Namespace) -> int:
    check_inputs(args)
    report = run_bench(Path(args.work), model_path(args), Path(args.soft_prompt), args.optimum_cli, args.only,
                       args.new_tokens, args.runs, args.reuse, args.rounds, optional_path(args.adapter),
                       optional_path(args.steering_vector))
    (Path(args.work) / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (Path(args.work) / "bench.md").write_text(markdown(report))
    (Path(args.work) / "bench.svg").write_text(svg(report))
    print(markdown(report))
    return 0
