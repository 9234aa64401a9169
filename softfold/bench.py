"""`softfold bench`: softfold's bundles against what users would otherwise pick, in one run on one machine.

Every variant is exported in its own process (wall time and peak RSS of that process, artifact size),
then measured in another fresh process (`softfold.bench_worker`, OMP_NUM_THREADS=1): time to first
token, decode tokens/s, resident memory. The speed goals are ratios between variants of the
same run (`GOALS`). Variants whose tool is missing (optimum-executorch lives in its own virtualenv)
are reported as skipped, with why.
"""
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from softfold.prompt_format import chat_text

PROMPT = ("Write a short, friendly note to my neighbor thanking them for watering my plants while I was away last "
          "week, and invite them over for coffee on Sunday afternoon.")
GUARD_MESSAGE = PROMPT

# The guard's prompt, in Llama Guard's layout (task, categories, conversation, answer format); its
# length, not its wording, is what costs: about 230 tokens around the user's message.
GUARD_PROMPT = """<|begin_of_text|><|start_header_id|>user<|end_header_id|>

Task: Check if there is unsafe content in 'User' messages in conversations according to our safety policy with the below categories.

<BEGIN UNSAFE CONTENT CATEGORIES>
S1: Violent Crimes.
S2: Non-Violent Crimes.
S3: Sex Crimes.
S4: Child Exploitation.
S5: Defamation.
S6: Specialized Advice.
S7: Privacy.
S8: Intellectual Property.
S9: Indiscriminate Weapons.
S10: Hate.
S11: Self-Harm.
S12: Sexual Content.
S13: Elections.
S14: Code Interpreter Abuse.
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>

User: {message}

<END CONVERSATION>

Provide your safety assessment for ONLY THE LAST User message in the above conversation:
 - First line must read 'safe' or 'unsafe'.
 - If unsafe, a second line must include a comma-separated list of violated categories.<|eot_id|><|start_header_id|>assistant<|end_header_id|>

"""


@dataclass(frozen=True)
class Variant:
    name: str
    engine: str  # softfold.bench_worker engine: runner | genai | naive
    export: tuple[str, ...] = ()  # argv run in a fresh process; {work}, {sp}, {hf}, {py}, {optimum} filled in
    # chat: the user prompt in the model's chat template; bundle: in the bundle's own template (virtual-token
    # bundles start every prompt with their N tokens); guard: the guard's prompt, 1 new token
    prompt: str = "chat"
    needs: str = ""  # an executable the export needs; missing: the variant is skipped
    inputs: tuple[str, ...] = ()  # bench inputs the export needs (adapter, steering); not given: skipped


def variants() -> list[Variant]:
    # {hf} is the bench's own safetensors copy of the model the soft prompt names: the same model, renamed
    plain = ("{py}", "-m", "softfold.cli", "export", "--model", "{hf}", "--force", "--trust-base-model")
    sf = (*plain, "--soft-prompt", "{sp}")
    q8da4w = ("--recipe", "8da4w", "--embedding-bits", "8", "--out", "{out}")
    ex = ("{py}", "-m", "softfold.bench_exports", "--model", "{hf}")
    oe = ("{optimum}", "export", "executorch", "-m", "{hf}", "--task", "text-generation", "--recipe", "xnnpack",
          "--use_custom_sdpa", "--use_custom_kv_cache", "--max_seq_len", "2048")
    builder = ("{py}", "-m", "softfold.bench_builder", "-i", "{hf}", "-e", "cpu", "-c", "{work}/cache")
    return [
        Variant("softfold-pte-fp32", "runner", (*sf, "--out", "{out}")),
        Variant("softfold-pte-8da4w", "runner", (*sf, "--recipe", "8da4w", "--embedding-bits", "8", "--out", "{out}")),
        Variant("softfold-pte-fp32-virtual", "runner", (*sf, "--folding", "virtual-tokens", "--out", "{out}"),
                prompt="bundle"),
        Variant("softfold-pte-8da4w-virtual", "runner", (*sf, "--folding", "virtual-tokens", "--recipe", "8da4w",
                                                          "--embedding-bits", "8", "--out", "{out}"), prompt="bundle"),
        # softfold's own program with nothing added: what the soft prompt's first-token cost is measured against
        Variant("no-soft-prompt-pte-fp32", "runner", (*plain, "--base-only", "--out", "{out}")),
        Variant("no-soft-prompt-pte-8da4w", "runner", (*plain, "--base-only", *q8da4w)),
        Variant("naive-pte-fp32", "naive", (*ex, "naive", "{out}", "--soft-prompt", "{sp}")),
        Variant("naive-pte-8da4w", "naive", (*ex, "naive", "{out}", "--soft-prompt", "{sp}", "--recipe", "8da4w")),
        Variant("optimum-executorch-fp32", "runner", (*oe, "-o", "{out}"), needs="{optimum}"),
        Variant("optimum-executorch-8da4w", "runner", (*oe, "--qlinear", "8da4w", "--qembedding", "8w", "-o", "{out}"),
                needs="{optimum}"),
        Variant("softfold-onnx-fp32", "genai", (*sf, "--target", "onnx", "--out", "{out}")),
        Variant("softfold-onnx-int4", "genai", (*sf, "--target", "onnx", "--recipe", "int4", "--out", "{out}")),
        Variant("ortgenai-builder-fp32", "genai", (*builder, "-p", "fp32", "-o", "{out}")),
        Variant("ortgenai-builder-int4", "genai", (*builder, "-p", "int4", "-o", "{out}")),
        # the paper's baselines, for the comparison: a merged LoRA, steering vectors (no soft prompt)
        Variant("lora-pte-8da4w", "runner", (*plain, "--adapter", "{adapter}", *q8da4w), inputs=("adapter",)),
        Variant("steering-pte-8da4w", "runner", (*plain, "--steering-vector", "{steering}", *q8da4w),
                inputs=("steering",)),
        Variant("guard-llama-guard-3-1b-shape-8da4w", "runner", (*ex, "guard", "{out}", "--recipe", "8da4w"),
                prompt="guard"),
    ]


INPUT_FLAGS = {"adapter": "--adapter", "steering": "--steering-vector"}  # Variant.inputs, as `softfold bench` takes them

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


@dataclass
class Result:
    name: str
    export_s: float | None = None
    export_peak_rss_mib: float | None = None
    artifact_mib: float | None = None
    run: dict = field(default_factory=dict)
    skipped: str = ""


def _timed(argv: list[str], env: dict, log: Path) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MiB) of the process tree, exit status."""
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, proc.returncode


def _size_mib(path: Path) -> float:
    files = [p for p in path.rglob("*") if p.is_file() and p.suffix in (".pte", ".onnx", ".data", ".ort")]
    return sum(p.stat().st_size for p in files) / 2**20


def _prepare(work: Path, model: Path, soft_prompt: Path, env: dict) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    hf = work / "hf"  # every tool starts from the same Hugging Face directory
    if not (hf / "config.json").exists():
        subprocess.run([sys.executable, "-m", "softfold.bench_exports", "--model", str(model), "hf", str(hf)], env=env,
                       check=True, capture_output=True)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf)
    (work / "chat.txt").write_text(chat_text(tok, PROMPT))
    (work / "guard.txt").write_text(GUARD_PROMPT.format(message=GUARD_MESSAGE))
    return {"work": str(work), "sp": str(soft_prompt), "hf": str(hf), "py": sys.executable}


def run_bench(work: Path, model: Path, soft_prompt: Path, optimum_cli: str | None = None,
              only: list[str] | None = None, new_tokens: int = 128, runs: int = 3, reuse: bool = False,
              rounds: int = 1, adapter: Path | None = None, steering: Path | None = None) -> dict:
    """Export every variant (or `only` these), then time them all `rounds` times, interleaved.
    `adapter` (a PEFT LoRA) and `steering` (a control vector) add the baselines' variants.

    Each round times every variant once, each in a fresh process; a variant's figures are the medians
    over rounds, so drift of the machine between processes lands on all variants alike.
    `reuse` keeps exports already in `work`.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    fill = {**_prepare(work, model, soft_prompt, env), "optimum": optimum_cli or "",
            "adapter": str(adapter or ""), "steering": str(steering or "")}
    chosen = [v for v in variants() if not only or v.name in only]
    results = [_export(v, work, fill, env, reuse) for v in tqdm(chosen, desc="export", unit="variant")]
    samples: dict[str, list[dict]] = {r.name: [] for r in results}
    for _ in tqdm(range(rounds), desc="timing rounds", unit="round"):
        for v, r in zip(chosen, results):
            if r.skipped:
                continue
            out = work / v.name
            prompt, tokens = _prompt_file(v, work, out), (1 if v.prompt == "guard" else new_tokens)
            proc = subprocess.run([sys.executable, "-m", "softfold.bench_worker", v.engine, str(out), str(prompt),
                                   str(tokens), str(runs)], env=env, capture_output=True, text=True)
            if proc.returncode:
                err = proc.stderr.strip()
                r.skipped = f"run failed: {err.splitlines()[-1] if err else proc.returncode}"
                continue
            samples[r.name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        (work / "bench.partial.json").write_text(json.dumps(samples, indent=1))  # if cut short
    for r in results:
        if samples[r.name] and not r.skipped:
            r.run = _over_rounds(samples[r.name])
    results.append(_dual_system(results))
    return {"machine": machine(), "new_tokens": new_tokens, "runs": runs, "rounds": rounds,
            "results": [r.__dict__ for r in results], "goals": goals([r.__dict__ for r in results])}


def _export(v: Variant, work: Path, fill: dict, env: dict, reuse: bool) -> Result:
    out, r = work / v.name, Result(v.name)
    if v.needs and not shutil.which(v.needs.format(**fill) or "-"):
        r.skipped = f"{v.needs.format(**fill) or 'optimum-cli'} not found (pass --optimum-cli)"
        return r
    missing = [name for name in v.inputs if not fill[name]]
    if missing:
        r.skipped = "needs " + " and ".join(INPUT_FLAGS[name] for name in missing)
        return r
    if not (reuse and (out / "bench_export.json").exists()):
        shutil.rmtree(out, ignore_errors=True)
        argv = [a.format(**fill, out=out) for a in v.export]
        seconds, rss, code = _timed(argv, env, work / f"{v.name}.export.log")
        if code not in (0, 1):  # softfold export exits 1 when a quantized gate fails: the bundle is there
            r.skipped = f"export failed (exit {code}), see {work / f'{v.name}.export.log'}"
            return r
        (out / "bench_export.json").write_text(json.dumps({"export_s": seconds, "export_peak_rss_mib": rss}))
    exported = json.loads((out / "bench_export.json").read_text())
    r.export_s, r.export_peak_rss_mib = round(exported["export_s"], 1), round(exported["export_peak_rss_mib"])
    r.artifact_mib = round(_size_mib(out), 1)
    if v.engine == "runner" and not (out / "tokenizer.json").exists():
        shutil.copy(Path(fill["hf"]) / "tokenizer.json", out / "tokenizer.json")
    return r


def _over_rounds(samples: list[dict]) -> dict:
    """One variant's figures over rounds: median timings, the largest memory, every round's timings kept."""
    def median(key: str):
        values = [s[key] for s in samples if s[key] is not None]
        return round(statistics.median(values), 1) if values else None

    return {**samples[0], "ttft_ms": median("ttft_ms"), "decode_tok_s": median("decode_tok_s"),
            "rss_before_mib": max(s["rss_before_mib"] for s in samples),
            "peak_rss_mib": max(s["peak_rss_mib"] for s in samples),
            "rounds_ttft_ms": [s["ttft_ms"] for s in samples],
            "rounds_decode_tok_s": [s["decode_tok_s"] for s in samples]}


def _prompt_file(v: Variant, work: Path, out: Path) -> Path:
    if v.prompt == "bundle":
        from transformers import AutoTokenizer

        (out / "chat.txt").write_text(chat_text(AutoTokenizer.from_pretrained(out), PROMPT))
        return out / "chat.txt"
    return work / f"{v.prompt}.txt"


def _dual_system(results: list[Result]) -> Result:
    """The LLM + guard in one app: both models resident; the guard's prompt before every reply."""
    by = {r.name: r for r in results}
    llm, guard = by.get("no-soft-prompt-pte-8da4w"), by.get("guard-llama-guard-3-1b-shape-8da4w")
    if not (llm and guard and llm.run and guard.run):
        return Result("dual-system-8da4w", skipped="needs no-soft-prompt-pte-8da4w and the guard")
    rss = llm.run["peak_rss_mib"] + guard.run["peak_rss_mib"] - guard.run["rss_before_mib"]  # one process, one runtime
    return Result("dual-system-8da4w", artifact_mib=round(llm.artifact_mib + guard.artifact_mib, 1),
                  run={"ttft_ms": round(llm.run["ttft_ms"] + guard.run["ttft_ms"], 1),
                       "decode_tok_s": llm.run["decode_tok_s"], "peak_rss_mib": round(rss),
                       "guard_ms_per_request": guard.run["ttft_ms"]})


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
