"""Calibration inputs for the recipes that calibrate: chat-templated prompts, soft prompt in context.

The soft prompt is folded into the exported graph, so every calibration pass sees it: feeding the
user's tokens is enough for the activations to carry the safety behavior's ranges.
"""
from pathlib import Path

import numpy as np


def onnx_prefill_feeds(model_path: Path, token_ids: list[list[int]]) -> list[dict[str, np.ndarray]]:
    """One prefill feed per prompt for the ONNX decoder: tokens, attention mask, empty past K/V."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    past = [i.name for i in graph.input if i.name.startswith("past_key_values.")]
    dims = [d.dim_value for d in next(i for i in graph.input if i.name == past[0]).type.tensor_type.shape.dim]
    empty = np.zeros((1, dims[1], 0, dims[3]), dtype=np.float32)  # [batch, kv_heads, past=0, head_dim]
    return [{"input_ids": np.array([ids], dtype=np.int64), "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
             **{name: empty for name in past}} for ids in token_ids]
