"""One benchmark measurement in a fresh process: `python -m softfold.bench.worker ENGINE ARTIFACT PROMPT_FILE NEW RUNS`.

Engines: `runner` (TextLLMRunner over DIR/model.pte + DIR/tokenizer.json), `genai` (onnxruntime-genai
over DIR), `naive` (DIR/model.pte with token_embedding + text_decoder methods, the soft prompt's
embeddings prepended and prefilled at every request, as apps must do without folding). Prints one
JSON line: prompt tokens, median time to first token and decode speed over RUNS after a warm-up,
and the process's resident memory before loading and at its peak. Nothing else is imported first:
an HF tokenizer loaded beside the ExecuTorch runner slows its decode.
"""
import json
import resource
import statistics
import sys
import time
from pathlib import Path

from softfold.engines import text_runner  # the standard library and a ctypes helper only: nothing that slows the runner


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def runner_samples(bundle: Path, text: str, new_tokens: int, runs: int) -> tuple[int, list[tuple[float, float]]]:
    runner = text_runner.load_text_runner(bundle)
    samples, prompt_tokens = [], 0
    for _ in range(runs + 1):
        _, s = text_runner.greedy(runner, text, new_tokens, stop_strings=[])
        prompt_tokens = s["prompt_tokens"]
        decode_ms = max(s["inference_end_ms"] - s["prompt_eval_end_ms"], 1)
        samples.append((s["first_token_ms"] - s["inference_start_ms"], 1000 * (s["generated_tokens"] - 1) / decode_ms))
    return prompt_tokens, samples[1:]


def genai_samples(bundle: Path, text: str, new_tokens: int, runs: int) -> tuple[int, list[tuple[float, float]]]:
    import onnxruntime_genai as og

    # onnxruntime-genai loads for the genai engine only: nothing else runs beside the engine timed
    from softfold.engines import genai_runner

    model = og.Model(str(bundle))
    ids = og.Tokenizer(model).encode(text)
    window = json.loads((bundle / "genai_config.json").read_text())["model"]["decoder"].get("sliding_window") or {}
    samples = []
    for _ in range(runs + 1):
        run = genai_runner.greedy(model, ids, new_tokens, exact_length=True, capacity=window.get("window_size", 0))
        samples.append((1000 * (run.first_token - run.start), (len(run.ids) - 1) / (run.end - run.first_token)))
    return len(ids), samples[1:]


def naive_samples(bundle: Path, text: str, new_tokens: int, runs: int) -> tuple[int, list[tuple[float, float]]]:
    import torch
    from executorch.runtime import Runtime
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    text_runner.register_kernels()
    program = Runtime.get().load_program(str(bundle / "model.pte"))
    embed, decode = program.load_method("token_embedding"), program.load_method("text_decoder")
    soft = load_file(bundle / "soft_prompt.safetensors")["prompt_embeddings"].unsqueeze(0)
    ids = Tokenizer.from_file(str(bundle / "tokenizer.json")).encode(text, add_special_tokens=False).ids
    samples = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        x = torch.cat([soft, embed.execute([torch.tensor([ids])])[0]], dim=1)  # the soft prompt, every request
        token = decode.execute([x, torch.tensor([0])])[0].argmax(-1)
        first, pos = time.perf_counter(), x.shape[1]
        for _ in range(new_tokens - 1):
            token = decode.execute([embed.execute([token.view(1, 1)])[0], torch.tensor([pos])])[0].argmax(-1)
            pos += 1
        samples.append((1000 * (first - start), (new_tokens - 1) / (time.perf_counter() - first)))
    return len(ids), samples[1:]


ENGINES = {"runner": runner_samples, "genai": genai_samples, "naive": naive_samples}


def measure(engine: str, artifact: Path, prompt_file: Path, new_tokens: int, runs: int) -> dict:
    before = rss_mib()
    prompt_tokens, samples = ENGINES[engine](artifact, prompt_file.read_text(), new_tokens, runs)
    return {"engine": engine, "prompt_tokens": prompt_tokens, "runs": runs,
            "ttft_ms": round(statistics.median(s[0] for s in samples), 1),
            # one new token (the guard's verdict) has no decode phase
            "decode_tok_s": round(statistics.median(s[1] for s in samples), 1) if new_tokens > 1 else None,
            "rss_before_mib": round(before), "peak_rss_mib": round(peak_rss_mib())}


if __name__ == "__main__":
    engine, artifact, prompt_file, new_tokens, runs = sys.argv[1:6]
    print(json.dumps(measure(engine, Path(artifact), Path(prompt_file), int(new_tokens), int(runs))))
