"""The parity gate's report: parity.json for machines, parity.md (with a plot) for people, JUnit XML for CI."""
import json
from dataclasses import asdict
from pathlib import Path
from xml.sax.saxutils import quoteattr

from softfold.parity.gate import ParityReport


def write_reports(report: ParityReport, out_dir: Path) -> None:
    data = {"recipe": report.recipe, "passed": report.passed, "metrics": report.metrics,
            "thresholds": asdict(report.thresholds), "failures": report.failures,
            "prompts": [asdict(r) for r in report.prompts]}
    (out_dir / "parity.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    (out_dir / "parity.md").write_text(markdown(report))


def _bar(values: list[float], width: int = 48) -> str:
    blocks = " ▁▂▃▄▅▆▇█"
    if not values:
        return ""
    step = max(1, len(values) // width)
    cols = [max(values[i:i + step]) for i in range(0, len(values), step)]
    top = max(cols) or 1.0
    return "".join(blocks[round(v / top * 8)] for v in cols)


def markdown(report: ParityReport) -> str:
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [f"# Parity: {verdict} ({report.recipe})", "",
             "Reference: base model fp32 eager PyTorch + the bundle's PEFT adapters (soft prompt; LoRA unmerged). "
             "Exported: this bundle's model.", "",
             "| metric | value | limit |", "|---|---|---|"]
    t = report.thresholds
    limits = {"rel_dlogit": f"<= {t.max_rel_dlogit}", "mean_kl": f"<= {t.max_mean_kl}", "top1": f">= {t.min_top1}",
              "top5_overlap": f">= {t.min_top5_overlap}", "exact_match": f">= {t.min_exact_match}",
              "engine_match": f">= {t.min_engine_match}", "refusal_agreement": f">= {t.min_refusal_agreement}"}
    lines += [f"| {k} | {v:.6g} | {limits.get(k, '')} |" for k, v in report.metrics.items()]
    if report.failures:
        lines += ["", "## Failures", ""] + [f"- {f}" for f in report.failures]
    lines += ["", "## Per prompt", "", "max |Δlogit| along the positions (plot: each column is the max of a span)", "",
              "| prompt | max abs dlogit | top1 | greedy prefix | exact | engine text | refuses (ref/engine) "
              "| abs dlogit by position |", "|---|---|---|---|---|---|---|---|"]
    for r in report.prompts:
        lines.append(f"| {r.prompt[:40]} | {r.max_abs_dlogit:.3g} | {r.top1:.3f} | {r.greedy_prefix}/{r.greedy_tokens} "
                     f"| {r.exact_match} | {r.engine_match} | {r.reference_refuses}/{r.engine_refuses} "
                     f"| `{_bar(r.dlogit_by_position)}` |")
    return "\n".join(lines) + "\n"


def junit_xml(report: ParityReport) -> str:
    return junit_suite("softfold-parity", f"parity.{report.recipe}", report.metrics, report.failures)


def junit_suite(suite: str, classname: str, metrics: dict[str, float], failures: list[str]) -> str:
    """JUnit XML for CI test-report panels: one test case per metric, a failure element on those past their limit
    (a failure message starts with its metric's name)."""
    cases = []
    for name in metrics:
        failure = next((f for f in failures if f.startswith(name + " ")), None)
        body = f"<failure message={quoteattr(failure)}/>" if failure else ""
        cases.append(f'  <testcase classname="{classname}" name="{name}">{body}</testcase>')
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="{suite}" tests="{len(cases)}" '
            f'failures="{len(failures)}">\n' + "\n".join(cases) + "\n</testsuite>\n")
