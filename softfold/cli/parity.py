"""`softfold parity`: re-gate a bundle against the PyTorch reference, or against a released bundle (CI)."""
import argparse
import sys
from pathlib import Path

from softfold.cli.flags import (FRACTION, NONNEGATIVE, add_adapter_flag, add_model_flag, add_soft_prompt_flag,
                                add_steering_flag, chat_template_path, check_writable_file, positive_int,
                                report_verdict, verdict)
from softfold.files import OutputKind, check_out, file_sha256
from softfold.data.prompt_files import read_prompts
from softfold.errors import UserError

REPORT_FILES = ("parity.json", "bundle_parity.json")  # what a parity run writes into --report


def add_to(sub) -> None:
    p = sub.add_parser("parity", help="re-gate a bundle: against the PyTorch reference, or against a released bundle",
                       description="Checks the bundle's checksums, then gates it. With --soft-prompt, --adapter "
                                   "and/or --steering-vector (those the bundle was exported with): against the "
                                   "PyTorch reference (base model + soft prompt + LoRA unmerged + steering vectors "
                                   "added by hooks) with the recipe's default thresholds, "
                                   "through the same engines as at export. With --against RELEASED: against another "
                                   "bundle of the same base model, both through their phone engines, on the default "
                                   "prompts plus --prompts: refusal decisions read from both replies must agree on "
                                   "--min-agreement of the prompts, and the mean KL(released || new) over the reply "
                                   "positions must stay under --max-kl. Exits 1 when the gate fails. The bundles are "
                                   "never modified: reports go to --report.",
                       epilog="CI: `softfold parity new/ --against released/ --prompts my_prompts.jsonl --junit "
                              "parity.xml` (examples/github-actions-parity.yml)")
    p.add_argument("bundle")
    add_soft_prompt_flag(p, required=False, help="PEFT prompt-tuning directory (the distillation checkpoint) to "
                                                 "gate against")
    add_adapter_flag(p, help="PEFT LoRA directory the bundle merged (export --adapter): the reference applies it, "
                             "unmerged")
    add_steering_flag(p, help="llama.cpp control vector the bundle folded (export --steering-vector): the reference "
                              "adds its vectors by forward hooks")
    p.add_argument("--against", metavar="RELEASED", help="a released bundle to gate against (bundle vs bundle)")
    add_model_flag(p)
    p.add_argument("--prompts", nargs="+", default=[], metavar="FILE",
                   help="extra prompts (.txt one per line, or .jsonl with a \"prompt\" field), added to the defaults")
    p.add_argument("--max-new-tokens", type=positive_int, default=32,
                   help="with --against: greedy reply length per prompt (default 32)")
    p.add_argument("--min-agreement", type=FRACTION, default=0.97,
                   help="with --against: least fraction of prompts with the same refusal decision (default 0.97)")
    p.add_argument("--max-kl", type=NONNEGATIVE, default=0.1, metavar="NATS",
                   help="with --against: largest mean KL(released || new) per reply position (default 0.1; two "
                        "exports of the same inputs give 0)")
    p.add_argument("--report", help="directory for the reports (default: BUNDLE.parity beside it)")
    p.add_argument("--junit", help="also write the gate as JUnit XML here")
    p.set_defaults(func=handle)


REPORTS = OutputKind("parity report directory", lambda d: any((d / f).is_file() for f in REPORT_FILES),
                     " or ".join(REPORT_FILES), replace_flag=None,
                     fix="pass a new directory, or a previous parity report directory")


def handle(args: argparse.Namespace) -> int:
    # torch, transformers and the runtimes load when the command runs, not for --help or another command
    from softfold.api import Bundle
    from softfold.engines.chat import check_prompt_files

    if bool(args.soft_prompt or args.adapter or args.steering_vector) == bool(args.against):
        raise UserError("parity takes --soft-prompt DIR, --adapter DIR and/or --steering-vector FILE (gate against the "
                        "PyTorch reference) or --against BUNDLE (gate against a released bundle), one of the two")
    check_writable_file(args.junit, "--junit")
    bundles = [Bundle(Path(path)).opened() for path in (args.bundle, args.against) if path]
    sources = [(Path(path), read_prompts(path)) for path in args.prompts]
    for bundle in bundles:  # every prompt fits every bundle, before the first one runs
        check_prompt_files(bundle.path, sources)
    prompts = tuple(p for _, file_prompts in sources for p in file_prompts)
    out = Path(args.report or bundles[0].path.parent / f"{bundles[0].path.name}.parity")
    inputs = [p for p in (args.bundle, args.against, args.soft_prompt, args.adapter, args.steering_vector, args.model,
                          *args.prompts) if p]
    check_out(out, inputs, kind=REPORTS, flag="--report")
    if args.against:
        return _against_bundle(*bundles, prompts, args, out)
    return _against_reference(bundles[0], prompts, args, out)


def _against_reference(bundle, prompts: tuple[str, ...], args: argparse.Namespace, out: Path) -> int:
    # torch, transformers and the runtimes load when the command runs, not for --help or another command
    from softfold.parity.gate_report import junit_xml, write_reports

    report = bundle.parity(args.soft_prompt, args.model, prompts, chat_template_path(args), args.adapter,
                           args.steering_vector, check=False)
    for note in _other_inputs(bundle.manifest, args):
        print(f"note: {note}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    write_reports(report, out)
    if args.junit:
        Path(args.junit).write_text(junit_xml(report))
    return report_verdict(report, out)


def _other_inputs(manifest, args: argparse.Namespace) -> list[str]:
    """Where the soft prompt, LoRA or steering vectors given are not the ones the bundle was exported with (the gate
    then fails)."""
    # torch, transformers and the runtimes load when the command runs, not for --help or another command
    from softfold.inputs.soft_prompt import load_soft_prompt
    from softfold.inputs.lora import WEIGHTS_FILE

    notes = []
    exported = manifest.soft_prompt.sha256 if manifest.soft_prompt else None
    if args.soft_prompt and load_soft_prompt(Path(args.soft_prompt), manifest.model.hidden_size).sha256 != exported:
        notes.append(f"{args.soft_prompt} is not the soft prompt this bundle was exported with (sha256 differs)")
    merged = {f["path"]: f["sha256"] for f in manifest.adapter.files} if manifest.adapter else {}
    if args.adapter and file_sha256(Path(args.adapter) / WEIGHTS_FILE) != merged.get(WEIGHTS_FILE):
        notes.append(f"{args.adapter} is not the LoRA this bundle merged (sha256 differs)")
    if merged and not args.adapter:
        notes.append(f"this bundle merged the LoRA {manifest.adapter.source}: pass it as --adapter")
    folded = manifest.steering.sha256 if manifest.steering else None
    if args.steering_vector and file_sha256(Path(args.steering_vector)) != folded:
        notes.append(f"{args.steering_vector} is not the control vector this bundle folded (sha256 differs)")
    if folded and not args.steering_vector:
        notes.append(f"this bundle folded the steering vectors {manifest.steering.source}: pass them as "
                     "--steering-vector")
    return notes


def _against_bundle(bundle, released, prompts: tuple[str, ...], args: argparse.Namespace, out: Path) -> int:
    # torch, transformers and the runtimes load when the command runs, not for --help or another command
    from softfold.parity.against import BundleThresholds, junit_xml, write_reports

    report = bundle.compare(released, prompts, args.max_new_tokens,
                            BundleThresholds(min_decision_agreement=args.min_agreement, max_mean_kl=args.max_kl),
                            check=False)
    out.mkdir(parents=True, exist_ok=True)
    write_reports(report, out)
    if args.junit:
        Path(args.junit).write_text(junit_xml(report))
    m = report.metrics
    return verdict(f"bundle parity {'PASSED' if report.passed else 'FAILED'}: decision_agreement="
                   f"{m['decision_agreement']:.4f} mean_kl={m['mean_kl']:.3g} top1={m['top1']:.4f} "
                   f"text_match={m['text_match']:.2f} ({len(report.prompts)} prompts)", report.failures,
                   out / "bundle_parity.md")
