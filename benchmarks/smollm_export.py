"""Export SmolLM2-135M-Instruct with and without a 100-token soft prompt; time export and the runner.

usage: python benchmarks/smollm_export.py [WORKDIR]   (writes benchmarks/results/smollm_export.json)
Each runner measurement runs in its own process with OMP_NUM_THREADS=1.
"""
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
NEW_TOKENS, RUNS = 128, 3
PROMPT = "Give me three practical tips for sleeping better, and explain briefly why each one works."


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(work: Path) -> dict:
    from softfold.export.executorch import export_pte, runner_metadata
    from softfold.export.fold import build_folded_model
    from softfold.load import default_model_path, load_base
    from softfold.pipeline import save_tokenizer
    from softfold.reference import chat_text, eos_ids
    from softfold.softprompt import SAFETY_INIT_TEXT, text_initialized_prompt

    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base = load_base(default_model_path())
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
           "load_s": round(time.perf_counter() - t0, 1)}
    save_tokenizer(base.tokenizer, work)
    (work / "prompt.txt").write_text(chat_text(base.tokenizer, PROMPT))
    prompt_dir = text_initialized_prompt(base, SAFETY_INIT_TEXT, 100, work / "soft-prompt")
    from softfold.load import load_soft_prompt

    soft = load_soft_prompt(prompt_dir, base.config.hidden_size).embeddings
    for name, prompt in (("folded_n100", soft), ("no_soft_prompt", None)):
        t0 = time.perf_counter()
        model = build_folded_model(base.model, prompt, 2048)
        fold_s = time.perf_counter() - t0
        export_pte(model, runner_metadata(model, base.tokenizer.bos_token_id, eos_ids(base)), work / f"{name}.pte")
        out[name] = {"fold_s": round(fold_s, 1), "export_s": round(time.perf_counter() - t0, 1),
                     "peak_rss_gib_so_far": round(peak_rss_gib(), 2),
                     "pte_mib": round((work / f"{name}.pte").stat().st_size / 2**20, 1)}
    for name in ("folded_n100", "no_soft_prompt"):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        res = subprocess.run([sys.executable, str(HERE / "runner_speed.py"), str(work / f"{name}.pte"),
                              str(work / "tokenizer.json"), str(work / "prompt.txt"), str(NEW_TOKENS), str(RUNS)],
                             env=env, capture_output=True, text=True, check=True)
        out[name]["runner"] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


if __name__ == "__main__":
    result = main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/softfold-bench"))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "smollm_export.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
