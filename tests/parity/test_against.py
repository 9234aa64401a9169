"""Bundle against bundle: refusal decisions and the KL over the reply positions against their limits; the report in
JSON, Markdown and JUnit."""
import json

import pytest

from softfold.errors import UserError
from softfold.parity.against import (BundleParityReport, BundleThresholds, PromptComparison, _aggregate, junit_xml,
                                     write_reports)


def row(prompt: str, released: bool, new: bool, kl: float) -> PromptComparison:
    return PromptComparison(prompt, "I can't" if released else "Sure", "I can't" if new else "Sure", released, new,
                            positions=4, mean_kl=kl, first_token_kl=kl, top1=1.0)


def test_a_flipped_decision_and_a_large_kl_each_fail():
    rows = [row("a", True, True, 0.0), row("b", False, False, 0.02), row("c", True, False, 0.5)]
    metrics, failures = _aggregate(rows, BundleThresholds())
    assert metrics["decision_agreement"] == pytest.approx(2 / 3) and metrics["mean_kl"] == pytest.approx(0.52 / 3)
    assert [f.split(" =")[0] for f in failures] == ["decision_agreement", "mean_kl"] and "['c']" in failures[0]
    assert _aggregate(rows[:2], BundleThresholds())[1] == []


def test_the_limits_are_finite_numbers_in_range():
    with pytest.raises(UserError, match="--min-agreement must be within"):
        BundleThresholds(min_decision_agreement=float("nan"))


def test_the_report_holds_every_prompt(tmp_path):
    rows = [row("a", True, True, 0.0), row("c", True, False, 0.5)]
    metrics, failures = _aggregate(rows, BundleThresholds())
    report = BundleParityReport("released/", "new/", BundleThresholds(), rows, metrics, failures)
    write_reports(report, tmp_path)
    data = json.loads((tmp_path / "bundle_parity.json").read_text())
    assert not data["passed"] and [p["prompt"] for p in data["prompts"]] == ["a", "c"]
    assert "# Bundle parity: FAILED" in (tmp_path / "bundle_parity.md").read_text()
    assert '<failure message="decision_agreement' in junit_xml(report)
