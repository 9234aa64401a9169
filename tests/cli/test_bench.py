"""`softfold bench` end to end on a tiny model: real exports, real runtimes, each in its own process."""
import json
import re

from softfold.bench.plot import BAR_W
from softfold.cli.main import main


def test_bench_exports_times_and_reports(tiny_models, soft_prompts, tmp_path, capsys):
    work = tmp_path / "bench"
    argv = ["bench", "--model", str(tiny_models["llama"]), "--soft-prompt", str(soft_prompts[("llama", 16)]),
            "--work", str(work), "--new-tokens", "8", "--runs", "1", "--rounds", "2",
            "--only", "softfold-pte-fp32", "softfold-pte-fp32-virtual", "naive-pte-fp32", "ortgenai-builder-fp32", "optimum-executorch-8da4w",
            "lora-pte-8da4w"]
    assert main(argv) == 0
    report = json.loads((work / "bench.json").read_text())
    by = {r["name"]: r for r in report["results"]}
    for name in ("softfold-pte-fp32", "softfold-pte-fp32-virtual", "naive-pte-fp32", "ortgenai-builder-fp32"):
        r = by[name]
        assert not r["skipped"], r["skipped"]
        assert r["export_s"] > 0 and r["export_peak_rss_mib"] > 50 and r["artifact_mib"] > 0
        # TextLLMRunner reports whole milliseconds: a tiny model's first token can take "0 ms"
        assert r["run"]["ttft_ms"] >= 0 and r["run"]["decode_tok_s"] > 0 and r["run"]["peak_rss_mib"] > 50
        # two interleaved rounds, each a fresh process: the figure is their median
        decode = r["run"]["rounds_decode_tok_s"]
        assert len(decode) == 2 and r["run"]["decode_tok_s"] == round(sum(decode) / 2, 1)
    # one prompt for all: the chat template's tokens, the soft prompt never counted as prompt tokens
    assert len({by[n]["run"]["prompt_tokens"] for n in ("softfold-pte-fp32", "naive-pte-fp32", "ortgenai-builder-fp32")}) == 1
    # virtual-token mode: the same prompt in the bundle's template, which starts with the 16 virtual tokens
    assert by["softfold-pte-fp32-virtual"]["run"]["prompt_tokens"] == by["softfold-pte-fp32"]["run"]["prompt_tokens"] + 16
    assert "optimum-cli" in by["optimum-executorch-8da4w"]["skipped"]
    assert by["lora-pte-8da4w"]["skipped"] == "needs --adapter"  # a baseline's variant without its input
    naive_goal = next(g for g in report["goals"] if g["goal"] == "first token vs naive prefill (fp32)")
    assert naive_goal["ratio"] == round(by["softfold-pte-fp32"]["run"]["ttft_ms"] / by["naive-pte-fp32"]["run"]["ttft_ms"], 3)
    assert "| softfold-pte-fp32 |" in capsys.readouterr().out
    # the plot: one bar per timed variant and metric, lengths proportional to the figures
    bars = re.findall(r'width="([0-9.]+)"[^>]*data-variant="([^"]+)" data-decode-tok-s="([0-9.]+)"',
                      (work / "bench.svg").read_text())
    assert {name for _, name, _ in bars} == {n for n, r in by.items() if r["run"] and not r["skipped"]}
    longest = max(float(v) for _, _, v in bars)
    for width, name, value in bars:
        assert float(value) == by[name]["run"]["decode_tok_s"]
        assert abs(float(width) - BAR_W * float(value) / longest) <= 0.1


