"""The `softfold` command. Each subcommand parses its flags and calls one library function.

The CLI layer imports the library's heavy modules lazily, inside each command's handler (and the recipe flags'
builder): torch must not load before `main` has set OMP_NUM_THREADS, and executorch, onnxruntime and
transformers load only for the commands that use them. Nothing else in softfold imports inside functions.
"""
import argparse
import json
import logging
import os
import warnings
import sys
import traceback
from functools import partial
from pathlib import Path

from softfold import bench
from softfold.bench_plot import svg
from softfold.bundle import read_manifest, verify
from softfold.datasets import (BENIGN_EVAL, BENIGN_TRAIN, DEFAULT_PROMPTS, HARMFUL_EVAL, HARMFUL_TRAIN,
                               NATURAL_BENIGN_EVAL, OVER_REFUSAL_EVAL, read_prompts)
from softfold.errors import EnvironmentFailure, ExitCode, UserError, environment_failure

EXAMPLES = """examples:
  softfold demo
  softfold export --soft-prompt my_prompt/ --out artifacts/smollm2/executorch-fp32
  softfold export --model ./Llama-3.2-1B-Instruct --soft-prompt my_prompt/ --out out/llama-fp32 --force
  softfold export --soft-prompt my_prompt/ --recipe 8da4w --embedding-bits 8 --out artifacts/smollm2/executorch-8da4w
  softfold export --soft-prompt my_prompt/ --target onnx --recipe int4 --out artifacts/smollm2/onnx-int4
  softfold export --soft-prompt my_prompt/ --recipe 8da4w --keep-8bit lm_head --out artifacts/smollm2/executorch-mixed
  softfold export --soft-prompt my_prompt/ --folding virtual-tokens --out artifacts/smollm2/executorch-virtual
  softfold calibrate-prefix --soft-prompt my_prompt/ --recipe 8da4w --embedding-bits 8 --out prefix-8da4w.safetensors
  softfold export --soft-prompt my_prompt/ --recipe 8da4w --embedding-bits 8 --prefix-kv prefix-8da4w.safetensors --out out/8da4w-cal
  softfold run artifacts/smollm2-135m-safety/executorch-fp32 "How do I bake bread?"
  softfold verify artifacts/smollm2-135m-safety/executorch-fp32

exit codes (every command):
  0  done
  1  a parity gate failed (its report was written) / verify found a damaged bundle
  2  bad input: one line names the input and the fix, before any heavy work
  3  the environment stopped the work: disk full, read-only or forbidden path, interrupted
  --debug after any command shows the traceback behind an error
"""


def export_command(args: argparse.Namespace) -> int:
    from softfold.api import export_with
    from softfold.parity import junit_xml
    from softfold.pipeline import Folding

    _check_writable_file(args.junit, "--junit")
    prompts = list(DEFAULT_PROMPTS) + (read_prompts(args.prompts) if args.prompts else [])
    opts = _export_options(args, folding=Folding(args.folding), max_context=args.max_context, prompts=tuple(prompts),
                           force=args.force, prefix_kv=Path(args.prefix_kv) if args.prefix_kv else None,
                           trust_base_model=args.trust_base_model)
    report = export_with(opts).report
    if args.junit:
        Path(args.junit).write_text(junit_xml(report))
    print(f"bundle: {opts.out}")
    return _report_verdict(report, opts.out)


def _check_writable_file(path: str | None, flag: str) -> None:
    """A report path the command will write at its end, checked at its start."""
    if path and not Path(path).parent.is_dir():
        raise UserError(f"{flag} {path}: directory {Path(path).parent} does not exist; create it or pick another path")
    if path and Path(path).is_dir():
        raise UserError(f"{flag} {path} is a directory: pass a file path")


def _export_options(args: argparse.Namespace, **extra):
    from softfold.export.quantize import Recipe
    from softfold.load import default_model_path
    from softfold.pipeline import ExportOptions, Target

    return ExportOptions(model=Path(args.model or default_model_path()), soft_prompt=Path(args.soft_prompt),
                         out=Path(args.out), target=Target(args.target), recipe=Recipe(args.recipe),
                         group_size=args.group_size, weight_bits=args.weight_bits, embedding_bits=args.embedding_bits,
                         algorithm=args.algorithm, keep_8bit=tuple(args.keep_8bit), **extra)


def _calibrate_prefix(args: argparse.Namespace) -> int:
    from softfold.calibrate.prefix import PrefixCalibration, calibrate_prefix, save_prefix
    from softfold.calibrate.prompts import prefix_calibration_prompts
    from softfold.calibrate.simulate import QuantSim
    from softfold.load import load_base, load_soft_prompt
    from softfold.pipeline import quant_schemes

    opts = _export_options(args)
    sim = QuantSim.of_schemes(quant_schemes(opts))
    config = PrefixCalibration(steps=args.steps, prompts_per_file=args.prompts_per_file,
                               opening_prompts_per_file=args.opening_prompts_per_file, seed=args.seed)
    base = load_base(opts.model)
    soft_prompt = load_soft_prompt(opts.soft_prompt, base.config.hidden_size)
    prefix = calibrate_prefix(base, soft_prompt, sim, prefix_calibration_prompts(config.prompts_per_file), config,
                              prefix_calibration_prompts(config.opening_prompts_per_file))
    save_prefix(prefix, opts.out)
    rejected = prefix.rejected_held_out_kl
    outcome = (f"calibrated {rejected:.4f}, not lower: the file holds the folded prefix" if rejected is not None
               else f"{prefix.held_out_kl_after:.4f} calibrated")
    print(f"prefix K/V: {opts.out} (held-out KL, fp32 student vs simulated {args.recipe}: "
          f"{prefix.held_out_kl_before:.4f} with the folded prefix, {outcome})")
    return 0


def _report_verdict(report, where: Path) -> int:
    m = report.metrics
    print(f"parity {'PASSED' if report.passed else 'FAILED'}: rel_dlogit={m['rel_dlogit']:.2e} "
          f"top1={m['top1']:.4f} exact_match={m['exact_match']:.2f} runner_match={m.get('runner_match', 'n/a')}")
    for failure in report.failures:
        print(f"  failed: {failure}", file=sys.stderr)
    if not report.passed:
        print(f"  report: {where}/parity.md", file=sys.stderr)
    return 0 if report.passed else 1


def _parity(args: argparse.Namespace) -> int:
    from softfold.api import Bundle
    from softfold.load import load_soft_prompt
    from softfold.parity import junit_xml, write_reports

    if bool(args.soft_prompt) == bool(args.against):
        raise UserError("parity takes --soft-prompt DIR (gate against the PyTorch reference) or --against BUNDLE "
                        "(gate against a released bundle), one of the two")
    bundle = Bundle(Path(args.bundle))
    _check_writable_file(args.junit, "--junit")
    prompts = tuple(p for path in args.prompts for p in read_prompts(path))
    out = Path(args.report or bundle.path.parent / f"{bundle.path.name}.parity")
    if args.against:
        return _bundle_parity(bundle, Bundle(Path(args.against)), prompts, args, out)
    report = bundle.parity(args.soft_prompt, args.model, prompts)
    manifest = bundle.manifest
    if load_soft_prompt(Path(args.soft_prompt), manifest.model.hidden_size).sha256 != manifest.soft_prompt.sha256:
        print(f"note: {args.soft_prompt} is not the soft prompt this bundle was exported with (sha256 differs)",
              file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    write_reports(report, out)
    if args.junit:
        Path(args.junit).write_text(junit_xml(report))
    return _report_verdict(report, out)


def _bundle_parity(bundle, released, prompts: tuple[str, ...], args: argparse.Namespace, out: Path) -> int:
    from softfold.bundle_parity import BundleThresholds, junit_xml, write_reports

    report = bundle.compare(released, prompts, args.max_new_tokens,
                            BundleThresholds(min_decision_agreement=args.min_agreement, max_mean_kl=args.max_kl))
    out.mkdir(parents=True, exist_ok=True)
    write_reports(report, out)
    if args.junit:
        Path(args.junit).write_text(junit_xml(report))
    m = report.metrics
    print(f"bundle parity {'PASSED' if report.passed else 'FAILED'}: decision_agreement={m['decision_agreement']:.4f} "
          f"mean_kl={m['mean_kl']:.3g} top1={m['top1']:.4f} text_match={m['text_match']:.2f} "
          f"({len(report.prompts)} prompts)")
    for failure in report.failures:
        print(f"  failed: {failure}", file=sys.stderr)
    if not report.passed:
        print(f"  report: {out}/bundle_parity.md", file=sys.stderr)
    return 0 if report.passed else 1


def _verify(args: argparse.Namespace) -> int:
    problems = verify(Path(args.bundle))
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    parity = read_manifest(Path(args.bundle)).get("parity", {})
    state = "intact" if not problems else f"DAMAGED ({len(problems)} problem(s))"
    print(f"{args.bundle}: {state}; parity at export: {'passed' if parity.get('passed') else 'FAILED'}")
    return 0 if not problems else 1


def _run(args: argparse.Namespace) -> int:
    from softfold.api import Bundle
    from softfold.chat import check_text, stream_to_stdout

    bundle = Bundle(Path(args.bundle))
    check_text(args.prompt)
    if args.no_verify:
        print(f"note: {bundle.path}'s checksums were not verified (--no-verify)", file=sys.stderr)
    else:
        bundle.check_intact("re-export it, or pass --no-verify to chat anyway")
    if not bundle.manifest.parity.passed:
        print(f"WARNING: {bundle.path} FAILED its parity gate at export ({bundle.path}/parity.md): its replies may "
              "not match the soft prompt's behavior", file=sys.stderr)
    reply = bundle.generate(args.prompt, args.max_new_tokens, on_token=stream_to_stdout, check=False)
    print(f"\n[{reply.prompt_tokens} prompt tokens, {reply.new_tokens} new; first token {reply.time_to_first_token_ms} ms;"
          f" decode {reply.decode_tokens_per_s:.1f} tok/s]", file=sys.stderr)
    return 0


def _distill(args: argparse.Namespace) -> int:
    from softfold.distill.losses import Loss
    from softfold.distill.recipe import DistillJob, run
    from softfold.distill.train import DistillConfig, LRSchedule
    from softfold.load import default_model_path

    config = DistillConfig(loss=Loss(args.loss), num_virtual_tokens=args.num_virtual_tokens, steps=args.steps,
                           batch_size=args.batch_size, lr=args.lr, lr_schedule=LRSchedule(args.lr_schedule), seed=args.seed, eval_every=args.eval_every,
                           bf16=args.bf16, quantization_aware=args.quantization_aware, init_from=args.init_from or "",
                           quantized_weight=args.quantized_weight, margin=args.margin,
                           opening_weight=args.opening_weight, balanced=args.balanced)
    job = DistillJob(model=Path(args.model or default_model_path()), out=Path(args.out), config=config,
                     harmful=tuple(map(Path, args.harmful)), benign=tuple(map(Path, args.benign)), guard=args.guard,
                     max_response_tokens=args.max_response_tokens, command=args.command_line,
                     teacher_cache=Path(args.teacher_cache) if args.teacher_cache else None)
    result = run(job)
    print(f"soft prompt: {args.out} (final held-out loss {result['history'][-1]['eval_loss']:.4f})")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from softfold.distill.evaluate import Label, evaluate, load_set, markdown, to_json
    from softfold.distill.recipe import make_guard
    from softfold.engines import bundle_replies
    from softfold.load import default_model_path, load_base

    sets = ([load_set(Path(f), Label.HARMFUL) for f in args.harmful] +
            [load_set(Path(f), Label.BENIGN) for f in args.benign])
    if len({s.name for s in sets}) < len(sets):
        raise UserError("--harmful / --benign: two prompt files share a name; rename one (sets are reported by name)")
    harmful = [p for s in sets if s.label is Label.HARMFUL for p in s.prompts]
    guard = make_guard(args.guard, harmful) if args.guard else None
    if args.bundle and not args.soft_prompt:
        raise UserError("--bundle compares with the fp32 soft prompt: pass --soft-prompt too")
    base = load_base(args.model or default_model_path())
    bundles = {Path(b).name: partial(bundle_replies, Path(b), base.tokenizer, max_new_tokens=args.max_new_tokens)
               for b in args.bundle}
    results = evaluate(base, sets, Path(args.soft_prompt) if args.soft_prompt else None, guard, args.max_new_tokens,
                       bundles, include_base=not args.no_base)
    print(markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results), indent=1) + "\n")
    return 0


def _sensitivity(args: argparse.Namespace) -> int:
    from softfold.calibrate.prompts import calibration_set
    from softfold.calibrate.sensitivity import sensitivity
    from softfold.load import default_model_path, load_base, load_soft_prompt
    from softfold.reference import Reference

    base = load_base(args.model or default_model_path())
    load_soft_prompt(Path(args.soft_prompt), base.config.hidden_size)  # validates, one-line errors
    harmful, benign = calibration_set(args.prompts_per_class)
    report = sensitivity(Reference(base, Path(args.soft_prompt)), harmful + benign, args.weight_bits, args.group_size)
    print(report.markdown())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from softfold.load import default_model_path

    report = bench.run_bench(Path(args.work), Path(args.model or default_model_path()), Path(args.soft_prompt),
                             args.optimum_cli, args.only, args.new_tokens, args.runs, args.reuse, args.rounds)
    (Path(args.work) / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (Path(args.work) / "bench.md").write_text(bench.markdown(report))
    (Path(args.work) / "bench.svg").write_text(svg(report))
    print(bench.markdown(report))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from softfold.demo import run_demo

    return run_demo(Path(args.out))


def _add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    from softfold.export.quantize import Recipe

    p.add_argument("--target", default="executorch", choices=["executorch", "onnx", "ort"],
                   help="executorch: model.pte for Android's LlmModule; onnx: model.onnx + genai_config.json for "
                        "onnxruntime-genai; ort: model.ort for ONNX Runtime Mobile (default: executorch)")
    p.add_argument("--recipe", default="fp32", choices=[r.value for r in Recipe],
                   help="fp32 (any target); fp16 (executorch); 8da4w, 8da8w: int8 dynamic activations x int4 "
                        "group-wise / int8 weights (executorch); int4: MatMulNBits; int8: dynamic int8; int8-static: "
                        "QDQ int8 calibrated on chat prompts (onnx, ort). The soft prompt's K/V are never quantized "
                        "(default: fp32)")
    p.add_argument("--group-size", type=int, default=32, help="int4 weight group / block size (default: 32)")
    p.add_argument("--embedding-bits", type=int, default=0, choices=[0, 4, 8],
                   help="quantize the embedding table too: 4 or 8 for executorch, 4 for onnx int4 (0 keeps it "
                        "fp32; default: 0)")
    p.add_argument("--keep-8bit", nargs="+", default=[], metavar="LAYER",
                   help="4-bit recipes: keep these layers at 8 bits, e.g. lm_head layers.3 (the ranking comes "
                        "from `softfold sensitivity`)")
    p.add_argument("--algorithm", choices=["rtn", "gptq", "hqq", "grid"],
                   help="weight rounding: rtn (round to nearest); gptq (8da4w, 8da8w, int4: rounds each layer so its "
                        "outputs match fp32 on calibration prompts from the distillation training files, soft prompt in "
                        "context; minutes per export); hqq (onnx int4, ORT's HQQ); grid (8da4w, int4: "
                        "weights already on a 4-bit grid, as a Q4_1 GGUF's, are kept exactly, the rest by gptq). "
                        "Default: grid for 4-bit weights (8da4w, int4) with prefix-kv folding, else rtn")
    p.add_argument("--weight-bits", type=int, choices=[2, 4, 8],
                   help="override the recipe's weight bits: 4 or 8 for executorch, 2/4/8 for onnx int4 "
                        "(2 bits shows the parity gate failing)")


class _Parser(argparse.ArgumentParser):
    """Flag mistakes as one line (exit 2, BAD_INPUT), pointing to --help rather than printing the usage block."""

    def error(self, message: str):
        self.exit(ExitCode.BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_export_arguments(p: argparse.ArgumentParser, positional_out: bool = False) -> None:
    """`softfold export`'s flags (also `optimum-cli export softfold`'s, whose output directory is positional)."""
    p.add_argument("--model", help="Hugging Face model directory or .gguf file (default: the embedded "
                                   "SmolLM2-135M-Instruct)")
    p.add_argument("--soft-prompt", required=True, help="PEFT prompt-tuning adapter directory")
    _add_recipe_arguments(p)
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="softfold", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Fold a trained soft prompt (PEFT prompt tuning) into phone-ready model bundles, "
                    "and gate them on parity with the PyTorch reference.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="fold a soft prompt into a bundle and run the parity gate",
                       description="Fold the soft prompt into the model graph (prefix-kv: its keys/values become "
                                   "constants; virtual-tokens: N reserved tokens start every prompt), lower it for "
                                   "the target runtime, and check parity against PEFT's PyTorch forward. Exits 1 "
                                   "when the parity gate fails (the report is written anyway), 2 on bad input "
                                   "(before any heavy work), 3 when the environment stops it (disk full, read-only, "
                                   "interrupted).")
    add_export_arguments(p)
    p.set_defaults(func=export_command)

    p = sub.add_parser("calibrate-prefix", help="fit the prefix K/V to a quantized recipe (4-bit bundles keep the "
                                                "fp32 model's refusals)",
                       description="A quantized model reads the fp32 prefix K/V differently from the fp32 model. "
                                   "This fits the prefix K/V (still fp32 constants in the bundle) so that the "
                                   "recipe's arithmetic, simulated in PyTorch, matches the fp32 soft prompt's "
                                   "next-token distributions over its replies to calibration prompts (the "
                                   "distillation training files). Pass the same recipe flags as to `softfold "
                                   "export`, then `softfold export ... --prefix-kv FILE`. The parity gate still "
                                   "compares with the fp32 PEFT reference.")
    p.add_argument("--model", help="base model (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--soft-prompt", required=True, help="PEFT prompt-tuning adapter directory")
    _add_recipe_arguments(p)
    p.add_argument("--out", required=True, help="safetensors file to write")
    p.add_argument("--steps", type=positive_int, default=300, help="Adam steps (default: 300)")
    p.add_argument("--prompts-per-file", type=positive_int, default=64,
                   help="calibration prompts from each distillation training file (default: 64)")
    p.add_argument("--opening-prompts-per-file", type=int, default=0,
                   help="also match the first reply token (where the refuse-or-answer decision falls) on this many "
                        "prompts per training file (default: 0, off)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_calibrate_prefix)

    p = sub.add_parser("verify", help="re-check a bundle's checksums and manifest schema")
    p.add_argument("bundle")
    p.set_defaults(func=_verify)

    p = sub.add_parser("run", help="chat with a bundle through ExecuTorch's TextLLMRunner (Android's engine)")
    p.add_argument("bundle")
    p.add_argument("prompt", help="the user message; the bundle's chat template is applied")
    p.add_argument("--max-new-tokens", type=positive_int, default=256)
    p.add_argument("--no-verify", action="store_true", help="skip the checksum check before loading (said on stderr)")
    p.set_defaults(func=_run)

    p = sub.add_parser("distill", help="distill the LLM + guard system into a soft prompt (PEFT prompt tuning)",
                       description="Train N virtual tokens so that the LLM alone behaves like the LLM + guard system: "
                                   "refuse what the guard flags, answer the rest as before. Resumes from OUT's "
                                   "checkpoint. Runs unchanged under `accelerate launch`.")
    p.add_argument("--model", help="base model (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--out", required=True, help="PEFT prompt-tuning directory to write (and resume from)")
    p.add_argument("--harmful", nargs="+", default=[str(f) for f in HARMFUL_TRAIN], metavar="FILE",
                   help="harmful training prompt files, .txt or .jsonl (default: the shipped Do-Not-Answer and "
                        "imperative sets)")
    p.add_argument("--benign", nargs="+", default=[str(f) for f in BENIGN_TRAIN], metavar="FILE",
                   help="benign training prompt files (default: the shipped benign sets)")
    p.add_argument("--guard", default="labels", help="labels (the prompt files' labels), classifier:DIR (HF "
                                                      "sequence classifier) or causal-lm:DIR (Llama Guard style)")
    p.add_argument("--loss", default="kl", choices=["tv", "kl", "direct"], help="distillation loss (default: kl)")
    p.add_argument("--num-virtual-tokens", type=positive_int, default=100)
    p.add_argument("--steps", type=positive_int, default=200)
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"],
                   help="constant, or cosine: from --lr down to 0 at the last step (a quieter end for long runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=positive_int, default=50, help="held-out loss and checkpoint every N steps")
    p.add_argument("--max-response-tokens", type=positive_int, default=16, help="teacher response tokens trained on")
    p.add_argument("--teacher-cache", metavar="FILE", help="save the teacher's responses and distributions here, "
                   "and reuse those of every prompt the same teacher (model, guard, refusal, --max-response-tokens) "
                   "already answered: loss or lr sweeps and grown data sets skip the teacher's work")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the frozen LLM (faster on CPUs with "
                                                       "AVX512-BF16 and on GPUs); the prompt and the loss stay fp32")
    p.add_argument("--quantization-aware", action="store_true",
                   help="also train through the 4-bit bundles' arithmetic (8da4w / int4: group-32 weights, int8 "
                        "activations, simulated), so refusals survive quantization; two forwards per step")
    p.add_argument("--quantized-weight", type=float, default=1.0, metavar="W",
                   help="with --quantization-aware: weight of the quantized model's loss against the fp32 one's "
                        "(above 1 favors agreement of the 4-bit bundles over the fp32 prompt's own fit)")
    p.add_argument("--margin", type=float, default=0.0, metavar="NATS",
                   help="also train each teacher reply token to lead the student's next likeliest one by NATS "
                        "(a hinge; default 0, off). It favors the commonest reply, the refusal: watch benign answers "
                        "(distill/RUNS.md)")
    p.add_argument("--opening-weight", type=float, default=1.0, metavar="W",
                   help="weight of each reply's first token, where the refuse-or-answer decision falls, against each "
                        "later token (default 1: all alike); long benign replies otherwise drown the decision")
    p.add_argument("--balanced", action="store_true",
                   help="half of every batch refused (flagged) prompts, half answered ones, whatever the files' mix")
    p.add_argument("--init-from", metavar="DIR", help="start from this PEFT prompt-tuning directory (e.g. a trained "
                                                       "prompt, to fine-tune it quantization-aware)")
    p.set_defaults(func=_distill)

    p = sub.add_parser("eval", help="refusals on harmful prompt sets, answers and over-refusals on benign ones",
                       description="Greedy replies (chat template applied), refusal detected from the text, for the "
                                   "base model, the dual system (with --guard), base + soft prompt and bundles. Each "
                                   "file is a set, reported by its name and by prompt form (a .jsonl set may give "
                                   "each prompt a \"form\"; a .txt set's forms are read from the prompts' surface).")
    p.add_argument("--model", help="base model (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--soft-prompt", help="PEFT prompt-tuning directory")
    p.add_argument("--guard", help="also evaluate the dual system: labels, classifier:DIR or causal-lm:DIR")
    p.add_argument("--harmful", nargs="+", default=[str(HARMFUL_EVAL)], metavar="FILE",
                   help="harmful sets, where a refusal is right (default: HarmBench standard behaviors, held out)")
    p.add_argument("--benign", nargs="+", default=[str(f) for f in (BENIGN_EVAL, NATURAL_BENIGN_EVAL, OVER_REFUSAL_EVAL)],
                   metavar="FILE", help="benign sets, where a refusal is an over-refusal (default: the held-out "
                                        "template set, natural requests and safe prompts that look unsafe)")
    p.add_argument("--max-new-tokens", type=positive_int, default=48)
    p.add_argument("--bundle", nargs="+", default=[], metavar="DIR",
                   help="also exported bundles, through their phone engines; their decisions are compared with "
                        "the fp32 soft prompt's")
    p.add_argument("--no-base", action="store_true", help="skip the base model (it takes as long as each system)")
    p.add_argument("--json", help="also write every system's per-prompt decisions here")
    p.set_defaults(func=_eval)

    p = sub.add_parser("parity", help="re-gate a bundle: against the PyTorch reference, or against a released bundle",
                       description="Checks the bundle's checksums, then gates it. With --soft-prompt: against the "
                                   "PyTorch reference (base model + soft prompt) with the recipe's default thresholds, "
                                   "through the same engines as at export. With --against RELEASED: against another "
                                   "bundle of the same base model, both through their phone engines, on the default "
                                   "prompts plus --prompts: refusal decisions read from both replies must agree on "
                                   "--min-agreement of the prompts, and the mean KL(released || new) over the reply "
                                   "positions must stay under --max-kl. Exits 1 when the gate fails. The bundles are "
                                   "never modified: reports go to --report.",
                       epilog="CI: `softfold parity new/ --against released/ --prompts my_prompts.jsonl --junit "
                              "parity.xml` (examples/github-actions-parity.yml)")
    p.add_argument("bundle")
    p.add_argument("--soft-prompt", help="PEFT prompt-tuning directory (the distillation checkpoint) to gate against")
    p.add_argument("--against", metavar="RELEASED", help="a released bundle to gate against (bundle vs bundle)")
    p.add_argument("--model", help="with --soft-prompt: base model (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--prompts", nargs="+", default=[], metavar="FILE",
                   help="extra prompts (.txt one per line, or .jsonl with a \"prompt\" field), added to the defaults")
    p.add_argument("--max-new-tokens", type=positive_int, default=32,
                   help="with --against: greedy reply length per prompt (default 32)")
    p.add_argument("--min-agreement", type=float, default=0.97,
                   help="with --against: least fraction of prompts with the same refusal decision (default 0.97)")
    p.add_argument("--max-kl", type=float, default=0.1, metavar="NATS",
                   help="with --against: largest mean KL(released || new) per reply position (default 0.1; two "
                        "exports of the same inputs give 0)")
    p.add_argument("--report", help="directory for the reports (default: BUNDLE.parity beside it)")
    p.add_argument("--junit", help="also write the gate as JUnit XML here")
    p.set_defaults(func=_parity)

    p = sub.add_parser("sensitivity", help="rank layers by how much their quantization moves the safety behavior",
                       description="Quantize one layer at a time (simulated 4-bit weights + int8 activations, soft "
                                   "prompt in context) and compare with fp32 on harmful and benign calibration "
                                   "prompts: first-token KL and refusal-decision flips. Suggests --keep-8bit layers "
                                   "for the 4-bit recipes and checks the suggestion.")
    p.add_argument("--model", help="base model (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--soft-prompt", required=True, help="PEFT prompt-tuning directory")
    p.add_argument("--weight-bits", type=int, default=4, choices=[2, 4, 8])
    p.add_argument("--group-size", type=int, default=32, choices=[0, 16, 32, 64, 128, 256])
    p.add_argument("--prompts-per-class", type=positive_int, default=16, help="harmful and benign calibration prompts each")
    p.add_argument("--json", help="also write the report as JSON here")
    p.set_defaults(func=_sensitivity)

    p = sub.add_parser("bench", help="time softfold's bundles against optimum-executorch, ORT GenAI's builder, the "
                                     "naive prefill and the dual system, in one run",
                       description="Exports every variant in its own process (wall time, peak RSS, size), then "
                                   "times each in a fresh process (first token, decode tok/s, RSS) with "
                                   "OMP_NUM_THREADS=1, and checks issue 6's goals as ratios. Writes WORK/bench.json, "
                                   "WORK/bench.md and a plot, WORK/bench.svg.")
    p.add_argument("--model", help="base model (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--soft-prompt", required=True, help="PEFT prompt-tuning directory")
    p.add_argument("--work", required=True, help="directory for the exports and results")
    p.add_argument("--optimum-cli", help="optimum-cli of a virtualenv with optimum-executorch "
                                         "(see benchmarks/README.md); without it those variants are skipped")
    p.add_argument("--only", nargs="+", choices=[v.name for v in bench.variants()], metavar="VARIANT",
                   help="measure only these variants")
    p.add_argument("--new-tokens", type=positive_int, default=128)
    p.add_argument("--runs", type=positive_int, default=3, help="timed runs per variant, after one warm-up (median)")
    p.add_argument("--rounds", type=positive_int, default=1,
                   help="time every variant this many times, interleaved, each in a fresh process (median over "
                        "rounds): this machine's speed drifts between processes, so ratios need several rounds")
    p.add_argument("--reuse", action="store_true", help="keep exports already in WORK (re-time them only)")
    p.set_defaults(func=_bench)

    p = sub.add_parser("demo", help="the embedded default end to end: SmolLM2-135M-Instruct + a safety soft "
                                    "prompt into a bundle, then a summary table")
    p.add_argument("--out", default="artifacts", help="where bundles go (default: artifacts/)")
    p.set_defaults(func=_demo)
    for command in sub.choices.values():
        command.add_argument("--debug", action="store_true", help="show the traceback behind an error")
    return parser


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


TORCH_ONLY_COMMANDS = {"distill", "eval", "sensitivity", "calibrate-prefix"}  # no phone runtime: let torch use every core


def quiet_libraries() -> None:
    """Keep the terminal for softfold's own output: the ML stack warns a lot about its own internals."""
    if os.environ.get("SOFTFOLD_VERBOSE"):
        return
    warnings.simplefilter("ignore")
    for name in ("torch", "torchao", "executorch", "onnxscript", "onnxruntime", "transformers", "peft", "root"):
        logging.getLogger(None if name == "root" else name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    command = (argv if argv is not None else sys.argv[1:])[:1]
    if not set(command) & TORCH_ONLY_COMMANDS:
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch loads: libgomp oversubscription slows decode
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a flag mistake already reported
        return e.code
    args.command_line = "softfold " + " ".join(sys.argv[1:] if argv is None else argv)
    return run_command(args.func, args)


def run_command(handler, args: argparse.Namespace) -> int:
    """A command's handler under the exit-code contract: user mistakes and environment failures as one line."""
    quiet_libraries()
    try:
        return handler(args)
    except UserError as e:
        return _fail(args, f"softfold: error: {e}", ExitCode.BAD_INPUT)
    except EnvironmentFailure as e:
        return _fail(args, f"softfold: environment: {e}", ExitCode.ENVIRONMENT)
    except KeyboardInterrupt:
        return _fail(args, "softfold: interrupted; nothing partial was left at --out", ExitCode.ENVIRONMENT)
    except OSError as e:
        if (failure := environment_failure(e)) is None:
            raise
        return _fail(args, f"softfold: environment: {failure}", ExitCode.ENVIRONMENT)


def _fail(args: argparse.Namespace, message: str, code: ExitCode) -> int:
    if args.debug:
        traceback.print_exc()
    print(message, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
