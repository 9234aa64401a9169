"""A bench run's report: the machine, every variant's figures, and the speed goals as ratios between variants
of the same run."""
import os
import platform

# (what, variant, metric, anchor variant, anchor metric, bound): variant / anchor must be >= or <= bound
GOALS = [
    ("8da4w decode vs optimum-executorch 8da4w", "softfold-pte-8da4w", "decode_tok_s", "optimum-executorch-8da4w",
     "decode_tok_s", ">=", 1.1),
    ("first token, soft prompt vs none (fp32)", "softfold-pte-fp32", "ttft_ms", "no-soft-prompt-pte-fp32", "ttft_ms",
     "<=", 1.05),
    ("first token, soft prompt vs none (8da4w)", "softfold-pte-8da4w", "ttft_ms", "no-soft-prompt-pte-8da4w",
     "ttft_ms", "<=", 1.05),
    ("first token vs naive prefill (fp32)", "softfold-pte-fp32", "ttft_ms", "naive-pte-fp32", "ttft_ms", "<=", 0.4),
    ("first token vs naive prefill (8da4w)", "softfold-pte-8da4w", "ttft_ms", "naive-pte-8da4w", "ttft_ms", "<=", 0.4),
    ("ONNX int4 decode vs ORT GenAI builder int4", "softfold-onnx-int4", "decode_tok_s", "ortgenai-builder-int4",
     "decode_tok_s", ">=", 1.0),
    ("runtime memory vs the dual system (8da4w)", "softfold-pte-8da4w", "peak_rss_mib", "dual-system-8da4w",
     "peak_rss_mib", "<=", 0.5),
    ("8da4w export wall time vs optimum-executorch", "softfold-pte-8da4w", "export_s", "optimum-executorch-8da4w",
     "export_s", "<=", 0.5),
]


def machine() -> dict:
    import onnxruntime
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    return {"cpu": cpu or platform.machine(), "cores": os.cpu_count(), "OMP_NUM_THREADS": 1,
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


def _metric(result: dict, metric: str) -> float | None:
    return result.get(metric) if metric in ("export_s", "artifact_mib") else result.get("run", {}).get(metric)


def goals(results: list[dict]) -> list[dict]:
    by = {r["name"]: r for r in results}
    out = []
    for what, name, metric, anchor, anchor_metric, op, bound in GOALS:
        a = _metric(by.get(name, {}), metric)
        b = _metric(by.get(anchor, {}), anchor_metric)
        ratio = round(a / b, 3) if a is not None and b else None
        met = None if ratio is None else (ratio >= bound if op == ">=" else ratio <= bound)
        out.append({"goal": what, "ratio": ratio, "bound": f"{op} {bound}", "met": met})
    return out


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, OMP_NUM_THREADS=1; torch {m['torch']}, onnxruntime "
             f"{m['onnxruntime']}. {report['new_tokens']} greedy new tokens; per variant the median of "
             f"{report['runs']} runs in a process, median over {report.get('rounds', 1)} interleaved rounds of "
             f"fresh processes.", "",
             "| variant | export s | export peak RSS MiB | artifact MiB | prompt tokens | first token ms | decode tok/s "
             "| runtime peak RSS MiB |", "|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        run = r["run"]
        cells = [r["export_s"], r["export_peak_rss_mib"], r["artifact_mib"], run.get("prompt_tokens"),
                 run.get("ttft_ms"), run.get("decode_tok_s"), run.get("peak_rss_mib")]
        row = " | ".join("-" if c is None else str(c) for c in cells)
        lines.append(f"| {r['name']} | {row} |" if not r["skipped"] else f"| {r['name']} | skipped: {r['skipped']} |")
    lines += ["", "| goal | ratio | bound | met |", "|---|---|---|---|"]
    lines += [f"| {g['goal']} | {g['ratio']} | {g['bound']} | {g['met']} |" for g in report["goals"]]
    return "\n".join(lines) + "\n"
