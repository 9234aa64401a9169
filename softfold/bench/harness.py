"""`softfold bench`: every variant exported in its own process (wall time, peak RSS, artifact size), then timed
in fresh processes (softfold.bench.worker, OMP_NUM_THREADS=1), round after round, interleaved. Variants whose tool
is missing are reported as skipped, with why."""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from softfold.bench.report import goals, machine
from softfold.bench.variants import GUARD_MESSAGE, GUARD_PROMPT, INPUT_FLAGS, PROMPT, Variant, variants
from softfold.inputs.chat_template import chat_text


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
        subprocess.run([sys.executable, "-m", "softfold.bench.exports", "--model", str(model), "hf", str(hf)], env=env,
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
            proc = subprocess.run([sys.executable, "-m", "softfold.bench.worker", v.engine, str(out), str(prompt),
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
