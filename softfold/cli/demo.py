"""`softfold demo`: the embedded default end to end."""
import argparse
from pathlib import Path


def add_to(sub) -> None:
    p = sub.add_parser("demo", help="the embedded default end to end: SmolLM2-135M-Instruct + a safety soft "
                                    "prompt into a bundle, then a summary table")
    p.add_argument("--out", default="artifacts", help="where bundles go (default: artifacts/)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from softfold.demo import run_demo

    return run_demo(Path(args.out))
