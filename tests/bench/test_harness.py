"""The bench's harness: a variant's figures over rounds are medians (memory the largest), the dual system both
models' cost in one process."""
from softfold.bench.harness import Result, _dual_system, _over_rounds


def test_rounds_are_summarized_by_their_median():
    rounds = [{"ttft_ms": t, "decode_tok_s": d, "rss_before_mib": 10, "peak_rss_mib": p, "prompt_tokens": 30}
              for t, d, p in ((10.0, 100.0, 200), (30.0, 80.0, 250), (20.0, 90.0, 220))]
    run = _over_rounds(rounds)
    assert (run["ttft_ms"], run["decode_tok_s"], run["peak_rss_mib"]) == (20.0, 90.0, 250)
    assert run["rounds_ttft_ms"] == [10.0, 30.0, 20.0] and run["prompt_tokens"] == 30


def test_the_dual_system_pays_for_both_models_and_the_guards_prompt():
    llm = Result("no-soft-prompt-pte-8da4w", artifact_mib=100.0,
                 run={"ttft_ms": 50.0, "decode_tok_s": 120.0, "peak_rss_mib": 300, "rss_before_mib": 40})
    guard = Result("guard-llama-guard-3-1b-shape-8da4w", artifact_mib=900.0,
                   run={"ttft_ms": 400.0, "decode_tok_s": None, "peak_rss_mib": 1100, "rss_before_mib": 40})
    dual = _dual_system([llm, guard])
    assert (dual.artifact_mib, dual.run["ttft_ms"], dual.run["peak_rss_mib"]) == (1000.0, 450.0, 1360)
    assert _dual_system([llm]).skipped.startswith("needs")
