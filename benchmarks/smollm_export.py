"""Export SmolLM2-135M-Instruct with and without a 100-token soft prompt; time export and the engines.

ExecuTorch .pte through TextLLMRunner, ONNX through onnxruntime-genai.

usage: python benchmarks/smollm_export.py [WORKDIR] [TARGETS]   (writes benchmarks/results/smollm_export.json)
TARGETS: comma-separated, default executorch,onnx.
Each engine measurement runs in its own process with OMP_NUM_THREADS=1.
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
    from softfold.bundle.tokenizer_files import save_tokenizer
    from softfold.distill.prompt_init import SAFETY_INIT_TEXT, text_initialized_prompt
    from softfold.export.executorch import export_pte, runner_metadata
    from softfold.export.fold import build_folded_model
    from softfold.export.onnx import export_onnx, write_genai_config
    from softfold.inputs.base_model import eos_ids, read_model
    from softfold.inputs.chat_template import chat_text
    from softfold.inputs.named_models import default_model_path
    from softfold.inputs.soft_prompt import load_soft_prompt

    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base = read_model(default_model_path()).load()
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
           "load_s": round(time.perf_counter() - t0, 1)}
    save_tokenizer(base.tokenizer, work)
    (work / "prompt.txt").write_text(chat_text(base.tokenizer, PROMPT))
    prompt_dir = text_initialized_prompt(base, SAFETY_INIT_TEXT, 100, work / "soft-prompt")
    soft = load_soft_prompt(prompt_dir, base.config.hidden_size).embeddings
    targets = sys.argv[2].split(",") if len(sys.argv) > 2 else ["executorch", "onnx"]
    for name, prompt in (("folded_n100", soft), ("no_soft_prompt", None)):
        for target in targets:
            t0 = time.perf_counter()
            model = build_folded_model(base.model, prompt, 2048)
            fold_s = time.perf_counter() - t0
            if target == "executorch":
                bundle = work / f"{name}-pte"
                bundle.mkdir(exist_ok=True)
                save_tokenizer(base.tokenizer, bundle)
                path = bundle / "model.pte"
                export_pte(model, runner_metadata(model, base.tokenizer.bos_token_id, eos_ids(base)), path)
                files = [path]
            else:
                bundle = work / f"{name}-onnx"
                bundle.mkdir(exist_ok=True)
                save_tokenizer(base.tokenizer, bundle)
                write_genai_config(model, base.tokenizer.bos_token_id, eos_ids(base), bundle, "model.onnx")
                export_onnx(model, bundle / "model.onnx")
                files = [bundle / "model.onnx", bundle / "model.onnx.data"]
            out[f"{name}/{target}"] = {
                "fold_s": round(fold_s, 1), "export_s": round(time.perf_counter() - t0, 1),
                "peak_rss_gib_so_far": round(peak_rss_gib(), 2),
                "model_mib": round(sum(f.stat().st_size for f in files) / 2**20, 1)}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in out:
        if "/" not in key:
            continue
        name, target = key.split("/")
        engine, bundle = ("runner", f"{name}-pte") if target == "executorch" else ("genai", f"{name}-onnx")
        cmd = [sys.executable, "-m", "softfold.bench.worker", engine, str(work / bundle), str(work / "prompt.txt"),
               str(NEW_TOKENS), str(RUNS)]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        out[key]["engine"] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


if __name__ == "__main__":
    result = main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/softfold-bench"))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "smollm_export.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
