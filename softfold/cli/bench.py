"""`softfold bench`: softfold's bundles timed against optimum-executorch, ORT GenAI's builder and the baselines."""
import argparse
import json
from pathlib import Path

from softfold.bench.harness import run_bench
from softfold.bench.plot import svg
from softfold.bench.report import markdown
from softfold.bench.variants import variants
from softfold.files import OutputKind, check_out
from softfold.cli.flags import (add_adapter_flag, add_model_flag, add_soft_prompt_flag, add_steering_flag, model_path,
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
    p.add_argument("--work", required=True, help="directory for the exports and results (a new directory, or a "
                                                 "previous bench's)")
    p.add_argument("--optimum-cli", help="optimum-cli of a virtualenv with optimum-executorch "
                                         "(see benchmarks/README.md); without it those variants are skipped")
    p.add_argument("--only", nargs="+", choices=[v.name for v in variants()], metavar="VARIANT",
                   help="measure only these variants")
    p.add_argument("--new-tokens", type=positive_int, default=128)
    p.add_argument("--runs", type=positive_int, default=3, help="timed runs per variant, after one warm-up (median)")
    p.add_argument("--rounds", type=positive_int, default=1,
                   help="time every variant this many times, interleaved, each in a fresh process (median over "
                        "rounds): a machine's speed drifts between processes, so ratios need several rounds")
    p.add_argument("--reuse", action="store_true", help="keep exports already in WORK (re-time them only)")
    p.set_defaults(func=handle)


BENCH_FILES = ("bench.json", "bench.partial.json", "hf")  # what a previous bench left in its --work
BENCH_WORK = OutputKind("softfold bench work directory", lambda d: any((d / f).exists() for f in BENCH_FILES),
                        " or ".join(BENCH_FILES), replace_flag=None,
                        fix="pass a new directory, or the --work of a previous bench")


def check_inputs(args: argparse.Namespace) -> None:
    """The soft prompt, adapter and control vector checked against the model, and --work, in seconds: the bench's
    exports run in processes of their own, whose errors would come back as skipped variants."""
    # torch, transformers and the runtimes load when the command runs, not for --help or another command
    from softfold.inputs.soft_prompt import load_soft_prompt
    from softfold.inputs.base_model import read_config
    from softfold.inputs.lora import load_lora
    from softfold.inputs.control_vector import load_steering

    config = read_config(model_path(args))
    load_soft_prompt(Path(args.soft_prompt), config.hidden_size)
    if args.adapter:
        load_lora(args.adapter, config)
    if args.steering_vector:
        load_steering(args.steering_vector, config)
    inputs = [p for p in (model_path(args), args.soft_prompt, args.adapter, args.steering_vector) if p]
    check_out(Path(args.work), inputs, kind=BENCH_WORK, flag="--work")


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
