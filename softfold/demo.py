"""`softfold demo`: the embedded default end to end, then a summary table."""
import time
from pathlib import Path

import psutil

from softfold.bundle import read_manifest
from softfold.chat import generate
from softfold.load import default_model_path, load_base
from softfold.pipeline import ExportOptions, export_bundle
from softfold.softprompt import SAFETY_INIT_TEXT, text_initialized_prompt

NAME = "smollm2-135m-safety"
NUM_VIRTUAL_TOKENS = 100
SPEED_PROMPT = "Give me three tips for sleeping better."


def run_demo(out: Path) -> int:
    model_path = default_model_path()
    root = out / NAME
    prompt_dir = root / "soft-prompt-text-init"
    if not (prompt_dir / "adapter_model.safetensors").exists():
        print(f"soft prompt: PEFT TEXT-initialized, {NUM_VIRTUAL_TOKENS} virtual tokens (the distilled safety prompt "
              f"is not shipped yet) -> {prompt_dir}")
        text_initialized_prompt(load_base(model_path), SAFETY_INIT_TEXT, NUM_VIRTUAL_TOKENS, prompt_dir)
    bundle = root / "executorch-fp32"
    print(f"exporting {model_path.name} + soft prompt -> {bundle}")
    start = time.perf_counter()
    report = export_bundle(ExportOptions(model=model_path, soft_prompt=prompt_dir, out=bundle, force=True))
    export_s = time.perf_counter() - start
    reply = generate(bundle, SPEED_PROMPT, max_new_tokens=64)
    print(f"\nsample: {SPEED_PROMPT!r} -> {reply.text.strip()[:200]!r}\n")
    print(summary_table(bundle, export_s, report, reply))
    return 0 if report.passed else 1


def summary_table(bundle: Path, export_s: float, report, reply) -> str:
    manifest = read_manifest(bundle)
    sp = manifest["soft_prompt"]
    m = report.metrics
    rows = [
        ("bundle", str(bundle)),
        ("soft prompt", f"{sp['source']} (N={sp['num_virtual_tokens']}, {sp['folding']}, sha256 {sp['sha256'][:12]})"),
        *((f["path"], f"{f['size'] / 2**20:.1f} MiB") for f in manifest["files"]),
        ("parity", f"{'PASSED' if report.passed else 'FAILED'} on {len(report.prompts)} prompts: "
                   f"rel dlogit {m['rel_dlogit']:.1e}, top1 {m['top1']:.4f}, greedy exact {m['exact_match']:.0%}, "
                   f"TextLLMRunner exact {m.get('runner_match', 0):.0%}"),
        ("export", f"{export_s:.0f} s, peak RSS {psutil.Process().memory_info().rss / 2**30:.2f} GiB (now)"),
        ("speed (TextLLMRunner)", f"prefill {reply.prefill_tokens_per_s:.0f} tok/s ({reply.prompt_tokens} tokens), "
                                  f"decode {reply.decode_tokens_per_s:.1f} tok/s, first token {reply.time_to_first_token_ms} ms"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
