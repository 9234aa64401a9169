"""The bench's report: each goal a ratio between two variants of the same run, met or not; skipped variants say
why."""
from softfold.bench.report import GOALS, goals, markdown


def result(name: str, **run) -> dict:
    return {"name": name, "export_s": run.pop("export_s", None), "export_peak_rss_mib": None, "artifact_mib": None,
            "run": run, "skipped": ""}


def test_a_goal_is_a_ratio_against_its_anchor():
    results = [result("softfold-pte-fp32", ttft_ms=40.0), result("naive-pte-fp32", ttft_ms=200.0),
               result("softfold-pte-8da4w", decode_tok_s=120.0), result("optimum-executorch-8da4w", decode_tok_s=100.0)]
    by = {g["goal"]: g for g in goals(results)}
    assert by["first token vs naive prefill (fp32)"] == {"goal": "first token vs naive prefill (fp32)", "ratio": 0.2,
                                                          "bound": "<= 0.4", "met": True}
    assert by["8da4w decode vs optimum-executorch 8da4w"]["ratio"] == 1.2
    assert by["8da4w export wall time vs optimum-executorch"]["met"] is None  # not measured: no verdict
    assert len(by) == len(GOALS)


def test_the_markdown_names_the_machine_and_a_skipped_variants_reason():
    skipped = {**result("optimum-executorch-fp32"), "skipped": "optimum-cli not found (pass --optimum-cli)"}
    report = {"machine": {"cpu": "a CPU", "cores": 2, "torch": "2", "onnxruntime": "1"}, "new_tokens": 8, "runs": 1,
              "results": [result("softfold-pte-fp32", ttft_ms=40.0), skipped], "goals": goals([])}
    text = markdown(report)
    assert text.startswith("Machine: a CPU, 2 cores") and "| optimum-executorch-fp32 | skipped: optimum-cli" in text
