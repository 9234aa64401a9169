"""`softfold export`: fold a soft prompt (and/or merge a LoRA, add steering vectors) into a bundle and gate it (also
`optimum-cli export softfold`)."""
import argparse
from pathlib import Path

from softfold.cli.flags import (Once, add_adapter, add_junit, add_model, add_out, add_prompts, add_recipe,
                                add_soft_prompt, add_steering_vector, model_path, optional_path, positive_int,
                                quant_config)
from softfold.cli.verdicts import check_writable_file, report_verdict
from softfold.data.prompt_files import read_prompts
from softfold.data.shipped import DEFAULT_PROMPTS
from softfold.export.config import Folding


def add_to(sub) -> None:
    p = sub.add_parser("export", help="fold a soft prompt (and/or merge a LoRA, add steering vectors) into a bundle "
                                      "and run the parity gate",
                       description="Fold the soft prompt into the model graph, merging the --adapter LoRA and adding "
                                   "the --steering-vector vectors first when given, lower it for the target runtime, "
                                   "and gate it on parity with the PyTorch reference (docs/folding.md, docs/gate.md). "
                                   "Exits 1 when the gate fails (the bundle and its report are written anyway).")
    add_export_arguments(p)
    p.set_defaults(func=handle)


def add_export_arguments(p: argparse.ArgumentParser, positional_out: bool = False) -> None:
    """`softfold export`'s flags (also `optimum-cli export softfold`'s, whose output directory is positional)."""
    add_model(p)
    add_soft_prompt(p)
    add_adapter(p)
    add_steering_vector(p)
    p.add_argument("--base-only", action="store_true",
                   help="nothing added: the base model through the same recipe and gate (a cost anchor, not a "
                        "safety model)")
    add_recipe(p)
    p.add_argument("--folding", default="prefix-kv", choices=["prefix-kv", "virtual-tokens"],
                   help="the soft prompt as constant K/V, or as N special tokens before every prompt (default: "
                        "prefix-kv)")
    add_out(p, positional=positional_out)
    p.add_argument("--max-context", type=positive_int, default=2048, metavar="N",
                   help="user tokens the KV cache holds (default: 2048)")
    add_prompts(p)
    add_junit(p)
    p.add_argument("--prefix-kv", metavar="FILE", action=Once,
                   help="prefix K/V that `softfold calibrate-prefix` fitted to this soft prompt and recipe")
    p.add_argument("--force", action="store_true", help="replace --out if it is a previous softfold bundle")
    p.add_argument("--trust-base-model", action="store_true",
                   help="export although an adapter names another base model (the same one renamed or moved)")


def export_options(args: argparse.Namespace, **extra):
    """ExportOptions from the flags export and calibrate-prefix share (and the command's own extras)."""
    # the pipeline loads torch: only the commands that export pay for it, and never --help
    from softfold.pipeline.options import ExportOptions

    return ExportOptions(model=model_path(args), soft_prompt=optional_path(args.soft_prompt), out=Path(args.out),
                         quant=quant_config(args), chat_template=optional_path(args.chat_template),
                         adapter=optional_path(getattr(args, "adapter", None)),
                         steering_vector=optional_path(getattr(args, "steering_vector", None)), **extra)


def handle(args: argparse.Namespace) -> int:
    # the export loads torch, executorch and onnxruntime: when the command runs, not for --help
    from softfold.api import export_with
    from softfold.parity.gate import GateConfig
    from softfold.parity.gate_report import junit_xml

    check_writable_file(args.junit, "--junit")
    prompts = list(DEFAULT_PROMPTS) + [prompt for path in args.prompts for prompt in read_prompts(path)]
    opts = export_options(args, gate=GateConfig(tuple(prompts)), folding=Folding(args.folding),
                          max_context=args.max_context, force=args.force, prefix_kv=optional_path(args.prefix_kv),
                          trust_base_model=args.trust_base_model, base_only=args.base_only)
    report = export_with(opts).report
    if args.junit:
        Path(args.junit).write_text(junit_xml(report))
    print(f"bundle: {opts.out}")
    return report_verdict(report, opts.out)
