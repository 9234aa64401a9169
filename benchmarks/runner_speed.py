"""Time TextLLMRunner on one .pte (run in a fresh process per variant): median of N greedy runs.

usage: python benchmarks/runner_speed.py MODEL.pte TOKENIZER.json PROMPT_TEXT_FILE NEW_TOKENS RUNS
"""
import json
import statistics
import sys

from softfold.chat import native_output_silenced


def main(pte: str, tokenizer: str, prompt_file: str, new_tokens: int, runs: int) -> dict:
    from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401
    from executorch.extension.llm.runner import GenerationConfig, TextLLMRunner

    text = open(prompt_file).read()
    samples = []
    with native_output_silenced():
        runner = TextLLMRunner(pte, tokenizer)
        for _ in range(runs + 1):  # the first run warms up
            stats = []
            runner.generate(text, GenerationConfig(echo=False, max_new_tokens=new_tokens, temperature=0.0),
                            stats_callback=stats.append)
            runner.reset()
            s = stats[-1]
            samples.append({
                "prompt_tokens": s.num_prompt_tokens,
                "ttft_ms": s.first_token_ms - s.inference_start_ms,
                "decode_tok_s": 1000 * (s.num_generated_tokens - 1) / max(s.inference_end_ms - s.prompt_eval_end_ms, 1),
            })
    samples = samples[1:]
    return {
        "prompt_tokens": samples[0]["prompt_tokens"],
        "ttft_ms": statistics.median(x["ttft_ms"] for x in samples),
        "decode_tok_s": statistics.median(x["decode_tok_s"] for x in samples),
    }


if __name__ == "__main__":
    pte, tok, prompt_file, new_tokens, runs = sys.argv[1:6]
    print(json.dumps(main(pte, tok, prompt_file, int(new_tokens), int(runs))))
