"""onnxruntime-genai's greedy loop (the engine under ORT GenAI on Android), written once for parity, chat and bench.
"""
import time
from dataclasses import dataclass, field
from typing import Callable

import onnxruntime_genai as og


@dataclass
class GenaiRun:
    """One greedy generation: the new token ids and when each phase ended (time.perf_counter seconds)."""
    prompt_tokens: int
    ids: list[int] = field(default_factory=list)
    start: float = 0.0
    prefill_done: float = 0.0  # the prompt appended (prefilled)
    first_token: float = 0.0
    end: float = 0.0


def greedy(model: "og.Model", prompt_ids: list[int], max_new_tokens: int, on_token: Callable[[int], None] | None = None,
           exact_length: bool = False, capacity: int = 0) -> GenaiRun:
    """Greedy ids after `prompt_ids`, until end of sequence or max_new_tokens; `exact_length` ignores end of
    sequence (benchmarks time a fixed number of tokens). `capacity`: the least KV cache length to allocate (the
    builder's Gemma 3 graphs refuse a cache shorter than their sliding window)."""
    params = og.GeneratorParams(model)
    length = len(prompt_ids) + max_new_tokens
    params.set_search_options(do_sample=False, max_length=max(length, capacity),
                              **({"min_length": length} if exact_length else {}))
    generator = og.Generator(model, params)
    run = GenaiRun(len(prompt_ids), start=time.perf_counter())
    generator.append_tokens(prompt_ids)
    run.prefill_done = time.perf_counter()
    while not generator.is_done() and len(run.ids) < max_new_tokens:
        generator.generate_next_token()
        run.ids.append(int(generator.get_next_tokens()[0]))
        run.first_token = run.first_token or time.perf_counter()
        if on_token:
            on_token(run.ids[-1])
    run.end = time.perf_counter()
    run.first_token = run.first_token or run.end
    return run
