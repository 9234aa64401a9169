"""Time TextLLMRunner on one .pte (run in a fresh process per variant): median of N greedy runs.

usage: python benchmarks/runner_speed.py DIR/model.pte PROMPT_TEXT_FILE NEW_TOKENS RUNS   (DIR/tokenizer.json beside it)
"""
import json
import statistics
import sys
from pathlib import Path

from softfold import text_runner


def main(pte: str, prompt_file: str, new_tokens: int, runs: int) -> dict:
    text = open(prompt_file).read()
    runner = text_runner.load_text_runner(Path(pte).parent) if Path(pte).name == "model.pte" else None
    if runner is None:
        raise SystemExit("runner_speed.py wants DIR/model.pte with DIR/tokenizer.json beside it")
    samples = []
    for _ in range(runs + 1):  # the first run warms up
        _, s = text_runner.generate(runner, text, new_tokens, stop_strings=[])
        samples.append({
            "prompt_tokens": s["prompt_tokens"],
            "ttft_ms": s["first_token_ms"] - s["inference_start_ms"],
            "decode_tok_s": 1000 * (s["generated_tokens"] - 1) / max(s["inference_end_ms"] - s["prompt_eval_end_ms"], 1),
        })
    samples = samples[1:]
    return {"prompt_tokens": samples[0]["prompt_tokens"],
            "ttft_ms": statistics.median(x["ttft_ms"] for x in samples),
            "decode_tok_s": round(statistics.median(x["decode_tok_s"] for x in samples), 1)}


if __name__ == "__main__":
    pte, prompt_file, new_tokens, runs = sys.argv[1:5]
    print(json.dumps(main(pte, prompt_file, int(new_tokens), int(runs))))
