"""`softfold parity`: re-gate a bundle against the PyTorch reference, or against a released bundle (CI)."""
import argparse
import sys
from pathlib import Path

from softfold.cli.flags import (FRACTION, NONNEGATIVE, add_adapter, add_junit, add_max_new_tokens, add_model,
                                add_prompts, add_soft_prompt, add_steering_vector, model_path, optional_path)
from softfold.cli.verdicts import check_writable_file, report_verdict, verdict
from softfold.data.prompt_files import read_prompts
from softfold.engines.chat import check_prompt_files
from softfold.errors import UserError
from softfold.files import OutputKind, check_out

REPORT_FILES = ("parity.json", "bundle_parity.json")  # what a parity run writes into --report
REPORTS = OutputKind("parity report directory", lambda d: any((d / f).is_file() for f in REPORT_FILES),
                     " or ".join(REPORT_FILES), replace_flag=None,
                     fix="pass a new directory, or a previous parity report directory")


def add_to(sub) -> None:
    p = sub.add_parser("parity", help="re-gate a bundle: against the PyTorch reference, or against a released bundle",
                       description="Verify the bundle, then gate it: with the --soft-prompt, --adapter and/or "
                                   "--steering-vector it was exported with, against the PyTorch reference; with "
                                   "--against RELEASED, against another bundle of the same base model, both through "
                                   "their phone engines (docs/gate.md). Exits 1 when the gate fails. Reports go to "
                                   "--report; the bundles are never modified.",
                       epilog="CI: `softfold parity new/ --against released/ --prompts my_prompts.jsonl --junit "
                              "parity.xml` (examples/github-actions-parity.yml)")
    p.add_argument("bundle")
    add_soft_prompt(p)
    add_adapter(p)
    add_steering_vector(p)
    p.add_argument("--against", metavar="RELEASED", help="a released bundle to gate against (bundle vs bundle)")
    add_model(p)
    add_prompts(p)
    add_max_new_tokens(p, 32)
    p.add_argument("--min-agreement", type=FRACTION, default=0.97, metavar="SHARE",
                   help="with --against: least share of prompts with the same refusal decision (default: 0.97)")
    p.add_argument("--max-kl", type=NONNEGATIVE, default=0.1, metavar="NATS",
                   help="with --against: largest mean KL(released || new) per reply position (default: 0.1)")
    p.add_argument("--report", metavar="DIR", help="directory for the reports (default: BUNDLE.parity beside it)")
    add_junit(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    # the engines and the reference load torch and the runtimes: when the command runs, not for --help
    from softfold.api import Bundle

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
    paths = [p for p in (args.bundle, args.against, args.soft_prompt, args.adapter, args.steering_vector, args.model,
                         *args.prompts) if p]
    check_out(out, paths, kind=REPORTS, flag="--report")
    if args.against:
        return _against_bundle(*bundles, prompts, args, out)
    return _against_reference(bundles[0], prompts, args, out)


def _against_reference(bundle, prompts: tuple[str, ...], args: argparse.Namespace, out: Path) -> int:
    # the gate and the reference load torch: when the command runs, not for --help
    from softfold.inputs.read import read_inputs
    from softfold.parity.gate_report import junit_xml, write_reports

    inputs = read_inputs(model_path(args), optional_path(args.chat_template), args.soft_prompt, args.adapter,
                         args.steering_vector)
    report = bundle.parity_with(inputs, prompts)
    for note in bundle.mismatched(inputs):
        print(f"note: {note}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    write_reports(report, out)
    if args.junit:
        Path(args.junit).write_text(junit_xml(report))
    return report_verdict(report, out)


def _against_bundle(bundle, released, prompts: tuple[str, ...], args: argparse.Namespace, out: Path) -> int:
    # the engines load the runtimes: when the command runs, not for --help
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
