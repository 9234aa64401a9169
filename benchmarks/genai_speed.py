"""Time onnxruntime-genai on one ONNX bundle directory (run in a fresh process): median of N greedy runs.

usage: python benchmarks/genai_speed.py BUNDLE_DIR PROMPT_TEXT_FILE NEW_TOKENS RUNS
"""
import json
import statistics
import sys
import time


def main(bundle: str, prompt_file: str, new_tokens: int, runs: int) -> dict:
    import onnxruntime_genai as og

    model = og.Model(bundle)
    ids = og.Tokenizer(model).encode(open(prompt_file).read())
    samples = []
    for _ in range(runs + 1):  # the first run warms up
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=len(ids) + new_tokens, min_length=len(ids) + new_tokens)
        generator = og.Generator(model, params)
        start = time.perf_counter()
        generator.append_tokens(ids)
        generator.generate_next_token()
        first = time.perf_counter()
        n = 1
        while not generator.is_done():
            generator.generate_next_token()
            n += 1
        end = time.perf_counter()
        samples.append({"ttft_ms": 1000 * (first - start), "decode_tok_s": (n - 1) / (end - first)})
    samples = samples[1:]
    return {"prompt_tokens": len(ids), "ttft_ms": round(statistics.median(x["ttft_ms"] for x in samples), 1),
            "decode_tok_s": round(statistics.median(x["decode_tok_s"] for x in samples), 1)}


if __name__ == "__main__":
    bundle, prompt_file, new_tokens, runs = sys.argv[1:5]
    print(json.dumps(main(bundle, prompt_file, int(new_tokens), int(runs))))
