"""Export the folded model to ONNX (+ genai_config.json) for onnxruntime / onnxruntime-genai."""
import json
from pathlib import Path

import torch
from torch.export import Dim

from softfold.export.gqa import ONNX_TRANSLATIONS
from softfold.export.model import Transformer
from softfold.export.onnx_model import OnnxDecoder

OPSET = 18


def io_names(n_layers: int) -> tuple[list[str], list[str]]:
    past = [f"past_key_values.{i}.{kind}" for i in range(n_layers) for kind in ("key", "value")]
    present = [f"present.{i}.{kind}" for i in range(n_layers) for kind in ("key", "value")]
    return ["input_ids", "attention_mask", *past], ["logits", *present]


def cache_length(model: Transformer) -> int:
    """The fixed KV-cache length: the soft prompt's N slots, then the user's max_context."""
    return model.n_prefix + model.args.max_context


def export_onnx(model: Transformer, path: Path) -> None:
    """Write model.onnx (+ model.onnx.data, the weights as external data) at `path`."""
    a = model.args
    decoder = OnnxDecoder(model).eval()
    inputs, outputs = io_names(a.n_layers)
    past = [torch.zeros(1, a.n_kv_heads, cache_length(model), a.head_dim) for _ in range(2 * a.n_layers)]
    example = (torch.ones(1, 2, dtype=torch.long), torch.ones(1, 5, dtype=torch.long), *past)
    batch = Dim("batch", max=64)
    seq, total = (Dim(name, max=a.max_context) for name in ("sequence_length", "total_sequence_length"))
    dynamic = ({0: batch, 1: seq}, {0: batch, 1: total}, tuple({0: batch} for _ in past))
    with torch.no_grad():
        program = torch.onnx.export(decoder, example, dynamo=True, dynamic_shapes=dynamic, input_names=inputs,
                                    output_names=outputs, opset_version=OPSET, optimize=True, verbose=False,
                                    custom_translation_table=ONNX_TRANSLATIONS)
    for node in program.model.graph:  # the exporter's source paths and line numbers would make a bundle depend on
        node.metadata_props.pop("pkg.torch.onnx.stack_trace", None)  # where softfold is checked out
    program.save(str(path), external_data=True)


def genai_config(model: Transformer, bos_id: int, eos_ids: list[int], filename: str = "model.onnx") -> dict:
    """onnxruntime-genai's configuration for a plain `decoder` model with the KV-cache names above.

    The cache inputs have a fixed length, so onnxruntime-genai allocates them at that size and shares
    one buffer between past and present; `max_length` counts the user's tokens only.
    """
    a = model.args
    return {
        "model": {
            "bos_token_id": bos_id,
            "context_length": a.max_context,
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": filename,
                "head_size": a.head_dim,
                "hidden_size": a.dim,
                "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask",
                           "past_key_names": "past_key_values.%d.key", "past_value_names": "past_key_values.%d.value"},
                "outputs": {"logits": "logits", "present_key_names": "present.%d.key",
                            "present_value_names": "present.%d.value"},
                "num_attention_heads": a.n_heads,
                "num_hidden_layers": a.n_layers,
                "num_key_value_heads": a.n_kv_heads,
            },
            "eos_token_id": eos_ids if len(eos_ids) > 1 else eos_ids[0],
            "pad_token_id": eos_ids[0],
            "type": a.arch,
            "vocab_size": a.vocab_size,
        },
        "search": {
            "do_sample": False, "early_stopping": True, "max_length": a.max_context, "min_length": 0,
            "num_beams": 1, "num_return_sequences": 1, "past_present_share_buffer": True,
            "repetition_penalty": 1.0, "temperature": 1.0, "top_k": 1, "top_p": 1.0,
        },
    }


def write_genai_config(model: Transformer, bos_id: int, eos_ids: list[int], out_dir: Path, filename: str) -> None:
    config = genai_config(model, bos_id, eos_ids, filename)
    (out_dir / "genai_config.json").write_text(json.dumps(config, indent=4) + "\n")


def convert_to_ort(onnx_path: Path, ort_path: Path, operators_config: Path) -> None:
    """ORT format for ONNX Runtime Mobile, plus the operator list a reduced (minimal) ORT build needs.

    Graph optimizations are applied at level EXTENDED: hardware-independent fusions only, since the
    .ort runs on phones; ALL would add x86-specific layout transforms.
    """
    import onnxruntime as ort
    from onnxruntime.tools.ort_format_model.utils import create_config_from_models

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(ort_path)
    options.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    create_config_from_models([ort_path], operators_config, enable_type_reduction=False)
    lines = operators_config.read_text().splitlines()  # its header names the (temporary) model path
    operators_config.write_text("\n".join(f"# - {ort_path.name}" if line.startswith("# - ") else line
                                          for line in lines) + "\n")
