"""A GGUF file's header read without gguf's GGUFReader: its metadata and its tensors' storage types."""
from pathlib import Path

from softfold.inputs.chat_template import has_chat_template
from softfold.inputs.gguf_header import gguf_metadata, gguf_tensor_types


def write_gguf(path: Path, template: str | None) -> Path:
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter, quants

    writer = GGUFWriter(str(path), "gemma3")
    writer.add_string("general.license", "gemma")
    writer.add_array("tokenizer.ggml.tokens", ["<pad>", "<eos>", "<bos>", "héllo"] * 50)
    writer.add_array("tokenizer.ggml.scores", [0.5] * 200)
    writer.add_uint32("gemma3.block_count", 18)
    writer.add_float32("gemma3.rope.freq_base", 10000.0)
    writer.add_bool("tokenizer.ggml.add_bos_token", True)
    if template is not None:
        writer.add_string("tokenizer.chat_template", template)
    writer.add_tensor("token_embd.weight", np.ones((4, 8), dtype=np.float32))
    q8 = quants.quantize(np.linspace(-1, 1, 4 * 64, dtype=np.float32).reshape(4, 64), GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.attn_q.weight", q8, raw_dtype=GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.1.ffn_down.weight", np.ones((4, 8), dtype=np.float16))
    writer.add_tensor("blk.1.attn_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_tensor_types_are_read_by_hugging_face_module(tmp_path):
    types = gguf_tensor_types(write_gguf(tmp_path / "m.gguf", None))
    assert types == {"embed_tokens": "F32", "layers.0.self_attn.q_proj": "Q8_0", "layers.1.mlp.down_proj": "F16"}


def test_gguf_metadata_reads_values_and_skips_arrays(tmp_path):
    metadata = gguf_metadata(write_gguf(tmp_path / "m.gguf", "{{ messages }}"))
    assert metadata["general.license"] == "gemma" and metadata["gemma3.block_count"] == 18
    assert metadata["gemma3.rope.freq_base"] == 10000.0 and metadata["tokenizer.ggml.add_bos_token"] is True
    assert metadata["tokenizer.ggml.tokens"] is None and metadata["tokenizer.ggml.scores"] is None
    assert metadata["tokenizer.chat_template"] == "{{ messages }}"
    assert has_chat_template(tmp_path, {"gguf_file": "m.gguf"})
    write_gguf(tmp_path / "base.gguf", None)
    assert not has_chat_template(tmp_path, {"gguf_file": "base.gguf"})
