"""The `softfold` command. Each subcommand parses its flags and calls one library function."""
import argparse
import os
import sys
from pathlib import Path

from softfold.errors import UserError

EXAMPLES = """examples:
  softfold demo
  softfold export --soft-prompt my_prompt/ --out artifacts/smollm2/executorch-fp32
  softfold export --model ./Llama-3.2-1B-Instruct --soft-prompt my_prompt/ --out out/llama-fp32 --force
  softfold export --soft-prompt my_prompt/ --recipe 8da4w --embedding-bits 8 --out artifacts/smollm2/executorch-8da4w
  softfold export --soft-prompt my_prompt/ --target onnx --recipe int4 --out artifacts/smollm2/onnx-int4
  softfold run artifacts/smollm2-135m-safety/executorch-fp32 "How do I bake bread?"
  softfold verify artifacts/smollm2-135m-safety/executorch-fp32
"""


def _export(args: argparse.Namespace) -> int:
    from softfold.calibrate.prompts import DEFAULT_PROMPTS, read_prompt_file
    from softfold.load import default_model_path
    from softfold.parity import junit_xml
    from softfold.export.quantize import Recipe
    from softfold.pipeline import ExportOptions, Target, export_bundle

    prompts = list(DEFAULT_PROMPTS) + (read_prompt_file(args.prompts) if args.prompts else [])
    opts = ExportOptions(model=Path(args.model or default_model_path()), soft_prompt=Path(args.soft_prompt),
                         out=Path(args.out), target=Target(args.target), recipe=Recipe(args.recipe),
                         group_size=args.group_size, weight_bits=args.weight_bits, embedding_bits=args.embedding_bits,
                         algorithm=args.algorithm, max_context=args.max_context, prompts=tuple(prompts),
                         force=args.force)
    report = export_bundle(opts)
    if args.junit:
        Path(args.junit).write_text(junit_xml(report))
    print(f"bundle: {opts.out}")
    return _report_verdict(report, opts.out)


def _report_verdict(report, where: Path) -> int:
    m = report.metrics
    print(f"parity {'PASSED' if report.passed else 'FAILED'}: rel_dlogit={m['rel_dlogit']:.2e} "
          f"top1={m['top1']:.4f} exact_match={m['exact_match']:.2f} runner_match={m.get('runner_match', 'n/a')}")
    for failure in report.failures:
        print(f"  failed: {failure}", file=sys.stderr)
    if not report.passed:
        print(f"  report: {where}/parity.md", file=sys.stderr)
    return 0 if report.passed else 1


def _verify(args: argparse.Namespace) -> int:
    from softfold.bundle import read_manifest, verify

    problems = verify(Path(args.bundle))
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    parity = read_manifest(Path(args.bundle)).get("parity", {})
    state = "intact" if not problems else f"DAMAGED ({len(problems)} problem(s))"
    print(f"{args.bundle}: {state}; parity at export: {'passed' if parity.get('passed') else 'FAILED'}")
    return 0 if not problems else 1


def _run(args: argparse.Namespace) -> int:
    from softfold.chat import generate, stream_to_stdout

    reply = generate(Path(args.bundle), args.prompt, args.max_new_tokens, on_token=stream_to_stdout)
    print(f"\n[{reply.prompt_tokens} prompt tokens, {reply.new_tokens} new; first token {reply.time_to_first_token_ms} ms;"
          f" decode {reply.decode_tokens_per_s:.1f} tok/s]", file=sys.stderr)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from softfold.demo import run_demo

    return run_demo(Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    from softfold.export.quantize import Recipe

    parser = argparse.ArgumentParser(
        prog="softfold", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Fold a trained soft prompt (PEFT prompt tuning) into phone-ready model bundles, "
                    "and gate them on parity with the PyTorch reference.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="fold a soft prompt into a bundle and run the parity gate",
                       description="Fold the soft prompt into the model graph (prefix-kv: its keys/values become "
                                   "constants), lower it for the target runtime, and check parity against "
                                   "PEFT's PyTorch forward. Exits 1 when the parity gate fails (the report is "
                                   "written anyway), 2 on bad input.")
    p.add_argument("--model", help="Hugging Face model directory or .gguf file (default: the embedded "
                                   "SmolLM2-135M-Instruct)")
    p.add_argument("--soft-prompt", required=True, help="PEFT prompt-tuning adapter directory")
    p.add_argument("--target", default="executorch", choices=["executorch", "onnx", "ort"],
                   help="executorch: model.pte for Android's LlmModule; onnx: model.onnx + genai_config.json for "
                        "onnxruntime-genai; ort: model.ort for ONNX Runtime Mobile (default: executorch)")
    p.add_argument("--recipe", default="fp32", choices=[r.value for r in Recipe],
                   help="fp32 (any target); 8da4w, 8da8w: int8 dynamic activations x int4 group-wise / int8 "
                        "weights (executorch); int4: MatMulNBits, int8: dynamic int8 (onnx, ort). The soft prompt "
                        "stays fp32 in every recipe (default: fp32)")
    p.add_argument("--group-size", type=int, default=32, help="int4 weight group / block size (default: 32)")
    p.add_argument("--embedding-bits", type=int, default=0, choices=[0, 4, 8],
                   help="executorch: quantize the embedding table too (0 keeps it fp32; default: 0)")
    p.add_argument("--algorithm", default="rtn", choices=["rtn", "hqq"], help="onnx int4 quantizer (default: rtn)")
    p.add_argument("--weight-bits", type=int, choices=[2, 4, 8],
                   help="override the recipe's weight bits: 4 or 8 for executorch, 2/4/8 for onnx int4 "
                        "(2 bits shows the parity gate failing)")
    p.add_argument("--out", required=True, help="bundle directory to create")
    p.add_argument("--max-context", type=int, default=2048, help="user tokens the KV cache holds (default: 2048)")
    p.add_argument("--prompts", help="extra parity prompts, one per line (added to the calibration set)")
    p.add_argument("--junit", help="also write the parity gate as JUnit XML to this path")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_export)

    p = sub.add_parser("verify", help="re-check a bundle's checksums and manifest schema")
    p.add_argument("bundle")
    p.set_defaults(func=_verify)

    p = sub.add_parser("run", help="chat with a bundle through ExecuTorch's TextLLMRunner (Android's engine)")
    p.add_argument("bundle")
    p.add_argument("prompt", help="the user message; the bundle's chat template is applied")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.set_defaults(func=_run)

    p = sub.add_parser("demo", help="the embedded default end to end: SmolLM2-135M-Instruct + a safety soft "
                                    "prompt into a bundle, then a summary table")
    p.add_argument("--out", default="artifacts", help="where bundles go (default: artifacts/)")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch loads: libgomp oversubscription slows decode
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"softfold: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
