"""A GGUF file's header read without gguf's GGUFReader, which decodes every vocabulary entry (seconds for a large
vocabulary) where a few values are needed: the metadata keys, and the tensors' storage types."""
import mmap
import re
import struct
from pathlib import Path

from gguf import GGMLQuantizationType, GGUFReader

# llama.cpp's tensor names -> the Hugging Face modules they load into
HF_MODULES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
              "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
              "ffn_down": "mlp.down_proj", "token_embd": "embed_tokens", "output": "lm_head"}

GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
GGUF_STRING, GGUF_ARRAY = 8, 9


def gguf_metadata(path: Path) -> dict[str, object]:
    """A GGUF file's metadata (version 2 or later): strings and numbers by key, arrays as None, skipped unread.
    gguf's GGUFReader decodes every vocabulary entry, seconds for a large vocabulary, where a few values are needed."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        version = struct.unpack_from("<I", data, 4)[0]
        if version < 2:  # version 1 wrote 32-bit lengths
            return {k: None for k in GGUFReader(path).fields if not k.startswith("GGUF.")}
        return _read_metadata(data)[0]


def gguf_tensor_types(path: Path) -> dict[str, str]:
    """A GGUF file's tensors' storage types by Hugging Face module name ("layers.0.self_attn.q_proj": "Q5_0",
    "embed_tokens": "Q8_0"): the projections and the embedding whose GGUF names are the common llama.cpp ones."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        version, tensors = struct.unpack_from("<IQ", data, 4)
        if version < 2:
            return {}
        at, types = _read_metadata(data)[1], {}
        for _ in range(tensors):
            name, at = _gguf_string(data, at)
            (dims,) = struct.unpack_from("<I", data, at)
            at += 4 + 8 * dims  # the dimension count, then the dimensions
            (kind,) = struct.unpack_from("<I", data, at)
            at += 4 + 8  # the type, then the data's offset
            module = _hf_module(name)
            if module:
                types[module] = GGMLQuantizationType(kind).name
        return types


def _hf_module(gguf_name: str) -> str | None:
    """"blk.3.attn_q.weight" -> "layers.3.self_attn.q_proj"; None for names outside HF_MODULES."""
    match = re.fullmatch(r"(?:blk\.(\d+)\.)?(\w+)\.weight", gguf_name)
    if not match or match[2] not in HF_MODULES:
        return None
    return (f"layers.{match[1]}." if match[1] else "") + HF_MODULES[match[2]]


def _read_metadata(data) -> tuple[dict[str, object], int]:
    """The metadata and the offset after it (where the tensor infos start)."""
    (count,) = struct.unpack_from("<Q", data, 16)
    metadata, at = {}, 24
    for _ in range(count):
        key, at = _gguf_string(data, at)
        (kind,) = struct.unpack_from("<I", data, at)
        metadata[key], at = _gguf_value(data, at + 4, kind)
    return metadata, at


def _gguf_string(data, at: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<Q", data, at)
    return bytes(data[at + 8:at + 8 + length]).decode("utf-8", errors="replace"), at + 8 + length


def _gguf_value(data, at: int, kind: int) -> tuple[object, int]:
    """The GGUF metadata value of type `kind` at `at` (None for an array, skipped) and the offset after it."""
    if kind == GGUF_STRING:
        return _gguf_string(data, at)
    if kind != GGUF_ARRAY:
        return struct.unpack_from(GGUF_SCALARS[kind], data, at)[0], at + struct.calcsize(GGUF_SCALARS[kind])
    item, count = struct.unpack_from("<IQ", data, at)
    at += 12
    if item in GGUF_SCALARS:
        return None, at + count * struct.calcsize(GGUF_SCALARS[item])
    for _ in range(count):
        at = _gguf_value(data, at, item)[1]
    return None, at
