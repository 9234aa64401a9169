"""`softfold export`: fold a soft prompt (and/or merge a LoRA, add steering vectors) into a bundle and gate it (also
`optimum-cli export softfold`)."""
import argparse
from pathlib import Path

from softfold.cli.flags import (add_adapter_flag, add_model_flag, add_recipe_arguments, add_soft_prompt_flag,
                                add_steering_flag, check_writable_file, export_options, positive_int, report_verdict)
from softfold.data.shipped import DEFAULT_PROMPTS
from softfold.data.prompt_files import read_prompts


def add_to(sub) -> None:
    p = sub.add_parser("export", help="fold a soft prompt (and/or merge a LoRA, add steering vectors) into a bundle "
                                      "and run the parity gate",
                       description="Fold the soft prompt into the model graph (prefix-kv: its keys/values become "
                                   "constants; virtual-tokens: N reserved tokens start every prompt), after merging "
                                   "the --adapter LoRA into the weights and adding the --steering-vector vectors "
                                   "after their blocks when given, lower it for the target runtime, and check parity "
                                   "against the PyTorch reference (PEFT's forward, the vectors added by hooks). "
                                   "Exits 1 when the parity gate fails (the report is written anyway), 2 on bad input "
                                   "(before any heavy work), 3 when the environment stops it (disk full, read-only, "
                                   "interrupted).")
    add_export_arguments(p)
    p.set_defaults(func=handle)


def add_export_arguments(p: argparse.ArgumentParser, positional_out: bool = False) -> None:
    """`softfold export`'s flags (also `optimum-cli export softfold`'s, whose output directory is positional)."""
    add_model_flag(p)
    add_soft_prompt_flag(p, required=False, help="PEFT prompt-tuning adapter directory (the distillation checkpoint); "
                                                 "needed unless --adapter, --steering-vector or --base-only is given")
    add_adapter_flag(p, help="PEFT LoRA adapter directory (`softfold distill --method lora` writes one), merged into "
                             "the weights (W + alpha / r B A) before folding and quantization; alone or with "
                             "--soft-prompt. The gate's reference is PEFT with the LoRA unmerged (and the soft prompt "
                             "in front). A merged Linear is off a GGUF's 4-bit grid: --algorithm grid rounds it by "
                             "gptq, and keeps the Linears the LoRA left alone exactly")
    add_steering_flag(p, help="llama.cpp control-vector GGUF (`softfold distill --method steering` writes "
                              "OUT/control_vector.gguf; llama.cpp's cvector-generator too): each direction.N is "
                              "added to the output of block N (0-based, after its residual add, at every position, as "
                              "llama.cpp's --control-vector adds it), as an fp32 constant of the graph that "
                              "quantization never touches; alone or with --soft-prompt and/or --adapter. The gate's "
                              "reference adds them by forward hooks")
    p.add_argument("--base-only", action="store_true",
                   help="export the model with nothing added (no soft prompt, LoRA or steering vectors), through the "
                        "same recipe, gate and manifest: the program a safety bundle's cost is measured against "
                        "(`softfold bench`'s no-soft-prompt variants), or a plain bundle for an A/B test. It refuses "
                        "nothing: never ship it as the safety model")
    add_recipe_arguments(p)
    p.add_argument("--folding", default="prefix-kv", choices=["prefix-kv", "virtual-tokens"],
                   help="prefix-kv: the soft prompt's keys/values are graph constants, no prefill cost per "
                        "conversation; virtual-tokens: N special tokens added to the tokenizer and chat template, "
                        "their embedding rows are the soft prompt (never quantized), N prefill tokens per "
                        "conversation, for runtimes that must see plain token ids (default: prefix-kv)")
    if positional_out:  # optimum-cli's convention: the output directory last, without a flag
        p.add_argument("out", help="bundle directory to create")
    else:
        p.add_argument("--out", required=True, help="bundle directory to create")
    p.add_argument("--max-context", type=positive_int, default=2048, help="user tokens the KV cache holds (default: 2048)")
    p.add_argument("--prompts", help="extra parity prompts, one per line (added to the calibration set)")
    p.add_argument("--junit", help="also write the parity gate as JUnit XML to this path")
    p.add_argument("--prefix-kv", metavar="FILE",
                   help="prefix K/V calibrated to this recipe by `softfold calibrate-prefix`, in place of the "
                        "folded ones (prefix-kv folding; the file must match --soft-prompt and the recipe flags)")
    p.add_argument("--force", action="store_true", help="replace --out if it is a previous softfold bundle (never "
                                                         "any other directory)")
    p.add_argument("--trust-base-model", action="store_true",
                   help="export although the soft prompt's adapter_config.json names another base model (the same "
                        "model renamed or moved); layer and head counts are still checked")


def handle(args: argparse.Namespace) -> int:
    # torch, transformers and the runtimes load when the command runs, not for --help or another command
    from softfold.api import export_with
    from softfold.export.config import Folding
    from softfold.parity.gate import GateConfig
    from softfold.parity.gate_report import junit_xml

    check_writable_file(args.junit, "--junit")
    prompts = list(DEFAULT_PROMPTS) + (read_prompts(args.prompts) if args.prompts else [])
    opts = export_options(args, gate=GateConfig(tuple(prompts)), folding=Folding(args.folding),
                          max_context=args.max_context, force=args.force,
                          prefix_kv=Path(args.prefix_kv) if args.prefix_kv else None,
                          trust_base_model=args.trust_base_model, base_only=args.base_only)
    report = export_with(opts).report
    if args.junit:
        Path(args.junit).write_text(junit_xml(report))
    print(f"bundle: {opts.out}")
    return report_verdict(report, opts.out)
