"""A command's verdict: the headline on stdout, each failure and where the report is on stderr, exit 0 or 1; a report
path checked before the work starts."""
from pathlib import Path

import pytest

from softfold.cli.verdicts import check_writable_file, verdict
from softfold.errors import UserError


def test_a_failed_gate_says_why_and_where_and_exits_1(capsys):
    assert verdict("parity PASSED", [], Path("r.md")) == 0 and capsys.readouterr().err == ""
    assert verdict("parity FAILED", ["mean_kl = 1, needs <= 0.1"], Path("out/parity.md")) == 1
    out, err = capsys.readouterr()
    assert out == "parity FAILED\n" and err == "  failed: mean_kl = 1, needs <= 0.1\n  report: out/parity.md\n"


def test_a_report_path_is_checked_up_front(tmp_path):
    check_writable_file(None, "--json")
    check_writable_file(str(tmp_path / "report.json"), "--json")
    with pytest.raises(UserError, match="does not exist; create it or pick another path"):
        check_writable_file(str(tmp_path / "absent" / "r.json"), "--junit")
    with pytest.raises(UserError, match="is a directory: pass a file path"):
        check_writable_file(str(tmp_path), "--json")
