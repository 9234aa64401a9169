"""A command's report files, checked before it works, and its verdict: on stdout, its failures on stderr, and its
exit code (docs/commands.md, "Exit codes")."""
import sys
from pathlib import Path

from softfold.errors import UserError


def check_writable_file(path: str | None, flag: str) -> None:
    """A report path the command will write at its end, checked at its start."""
    if path and not Path(path).parent.is_dir():
        raise UserError(f"{flag} {path}: directory {Path(path).parent} does not exist; create it or pick another path")
    if path and Path(path).is_dir():
        raise UserError(f"{flag} {path} is a directory: pass a file path")


def report_verdict(report, where: Path) -> int:
    """The parity gate's verdict on stdout, its failures on stderr; the exit code (0 passed, 1 failed)."""
    m = report.metrics
    return verdict(f"parity {'PASSED' if report.passed else 'FAILED'}: rel_dlogit={m['rel_dlogit']:.2e} "
                   f"top1={m['top1']:.4f} exact_match={m['exact_match']:.2f} "
                   f"engine_match={m.get('engine_match', 'n/a')}", report.failures, where / "parity.md")


def verdict(headline: str, failures: list[str], report_file: Path) -> int:
    """A gate's headline on stdout; each failure and, when failed, where the report is, on stderr; the exit code."""
    print(headline)
    for failure in failures:
        print(f"  failed: {failure}", file=sys.stderr)
    if failures:
        print(f"  report: {report_file}", file=sys.stderr)
    return 1 if failures else 0
