"""Calibration inputs for the recipes that calibrate: chat-templated prompts, soft prompt in context.

The soft prompt is folded into the exported graph, so every calibration pass sees it: feeding the
user's tokens is enough for the activations to carry the safety behavior's ranges.
"""
from pathlib import Path

import numpy as np


def onnx_prefill_feeds(model_path: Path, token_ids: list[list[int]]) -> list[dict[str, np.ndarray]]:
    """One prefill feed per prompt for the ONNX decoder: tokens, attention mask, an empty (zero) KV cache."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    past = [i.name for i in graph.input if i.name.startswith("past_key_values.")]
    dims = [d.dim_value for d in next(i for i in graph.input if i.name == past[0]).type.tensor_type.shape.dim]
    cache = {name: np.zeros((1, *dims[1:]), dtype=np.float32) for name in past}  # [batch, kv_heads, N + max_context, head_dim]
    return [{"input_ids": np.array([ids], dtype=np.int64), "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
             **cache} for ids in token_ids]
