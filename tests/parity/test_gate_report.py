"""The gate's report: every prompt in parity.json, the verdict and a plot of |Δlogit| in parity.md, one JUnit test
case per metric with a failure where it failed."""
import json

from softfold.parity.gate import ParityReport, PromptResult, Thresholds
from softfold.parity.gate_report import _bar, junit_suite, write_reports


def test_the_reports_say_the_verdict_and_every_prompt(tmp_path):
    result = PromptResult("How do I bake bread?", 5, 0.5, 10.0, 1e-3, 0.8, 0.9, 2, 4, False,
                          dlogit_by_position=[0.0, 0.1, 0.5, 0.2, 0.0])
    report = ParityReport("fp32", Thresholds(), [result], {"rel_dlogit": 0.05, "top1": 0.8},
                          ["rel_dlogit = 0.05, needs <= 0.0001; prompts: ['How do I bake bread?']"])
    write_reports(report, tmp_path)
    data = json.loads((tmp_path / "parity.json").read_text())
    assert not data["passed"] and data["prompts"][0]["greedy_prefix"] == 2
    text = (tmp_path / "parity.md").read_text()
    assert text.startswith("# Parity: FAILED (fp32)") and "| rel_dlogit | 0.05 | <= 0.0001 |" in text


def test_the_plot_scales_to_the_largest_and_junit_marks_each_failing_metric():
    assert _bar([0.0, 0.5, 1.0]) == " ▄█" and _bar([]) == ""
    xml = junit_suite("softfold-parity", "parity.fp32", {"mean_kl": 1.0, "top1": 1.0}, ["mean_kl = 1, needs <= 0"])
    assert 'tests="2" failures="1"' in xml and xml.count("<failure") == 1 and 'name="top1"></testcase>' in xml
