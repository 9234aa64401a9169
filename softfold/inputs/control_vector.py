"""Steering vectors, the paper's other baseline (docs/inputs.md): llama.cpp control vectors, one vector per
chosen layer added to the residual stream after that block, at every position.

The file is llama.cpp's control-vector GGUF, as its cvector-generator writes it and `--control-vector` reads it:
general.architecture "controlvector", `controlvector.model_hint` (the model's llama.cpp architecture, e.g. "llama"),
`controlvector.layer_count` (how many directions the file holds, int32, as cvector-generator writes it) and one
F32 tensor `direction.N` of n_embd values per steered layer.

What llama.cpp does with it, read in its source (ggml-org/llama.cpp): `common_control_vector_load_one`
(common/common.cpp) refuses `direction.0` ("invalid (zero) direction tensor layer index"), non-F32 and non-1-D
tensors, and stores direction.N at row N - 1 ("layer 1 at [0]"); `llama_adapter_cvec::init` / `apply`
(src/llama-adapter.cpp) hold no tensor for layer 0 ("there's never a tensor for layer 0") and fill layers 1 to
n_layer - 1 only; every architecture's graph ends block il with `cur = ggml_add(cur, ffn_inp)` (the residual add)
then `cur = build_cvec(cur, il)`, which `llama_adapter_cvec::apply_to` turns into cur + direction.il. So
direction.N is added to the output of block N, 0-based, N in 1 .. n_layer - 1: in transformers' terms, to the
hidden states `model.layers[N]` returns (the input of block N + 1, or of the final norm after the last block).
softfold reads and writes the same layout and the same indices.
"""
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from softfold.errors import UserError
from softfold.files import file_sha256

CONTROL_VECTOR_FILE = "control_vector.gguf"  # what `softfold distill --method steering` writes into --out
ARCHITECTURE = "controlvector"
MODEL_HINT, LAYER_COUNT = f"{ARCHITECTURE}.model_hint", f"{ARCHITECTURE}.layer_count"
# transformers' model_type -> llama.cpp's architecture name, where they differ
LLAMA_CPP_ARCHITECTURES = {"gemma3_text": "gemma3"}


def llama_cpp_architecture(config) -> str:
    """The model's architecture as llama.cpp names it: a control vector's model_hint."""
    return LLAMA_CPP_ARCHITECTURES.get(config.model_type, config.model_type)


def steerable_layers(n_layers: int) -> range:
    """The layers a control vector can steer: llama.cpp never adds one after block 0."""
    return range(1, n_layers)


def default_layers(n_layers: int) -> tuple[int, ...]:
    """The middle third of the blocks (n / 3 <= N < 2 n / 3), within the steerable ones: 10 to 19 of 30 layers."""
    band = [n for n in steerable_layers(n_layers) if n_layers <= 3 * n < 2 * n_layers]
    return tuple(band) or (min(max(n_layers // 2, 1), n_layers - 1),)


def check_layers(layers, n_layers: int, what: str) -> None:
    """Each layer index one llama.cpp can steer in this model, or a one-line UserError."""
    for layer in layers:
        if layer not in steerable_layers(n_layers):
            raise UserError(f"{what}: layer {layer} is out of range: this model's {n_layers} blocks take steering "
                            f"vectors after blocks 1 to {n_layers - 1} (llama.cpp never steers layer 0)")


@dataclass(frozen=True)
class SteeringVectors:
    path: Path
    model_hint: str | None  # the file's controlvector.model_hint (None when it has none)
    vectors: dict[int, torch.Tensor]  # llama.cpp's layer index N (added after block N) -> [hidden], fp32
    sha256: str  # of the file

    @property
    def layers(self) -> list[int]:
        return sorted(self.vectors)

    def record(self) -> dict:
        """The manifest's `steering` section."""
        return {"format": "llama.cpp control vector (GGUF)", "source": str(self.path), "sha256": self.sha256,
                "layers": self.layers, **({"model_hint": self.model_hint} if self.model_hint else {})}


def save_control_vector(path: Path, vectors: dict[int, torch.Tensor], model_hint: str) -> None:
    """llama.cpp's control-vector GGUF: direction.N (F32, [hidden]) for each layer N, written atomically."""
    from gguf import GGUFWriter

    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    writer = GGUFWriter(str(partial), ARCHITECTURE)
    writer.add_string(MODEL_HINT, model_hint)
    writer.add_int32(LAYER_COUNT, len(vectors))
    for layer, vector in sorted(vectors.items()):
        writer.add_tensor(f"direction.{layer}", vector.detach().float().cpu().numpy().astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(path)


def load_steering(path: str | Path, config, flag: str = "--steering-vector") -> SteeringVectors:
    """A control-vector GGUF checked against the model of `config` (architecture, layer range, hidden size, finite
    values); a one-line UserError naming the problem and the fix."""
    path = Path(path)
    if path.is_dir():
        hint = f" ({path / CONTROL_VECTOR_FILE})" if (path / CONTROL_VECTOR_FILE).is_file() else ""
        raise UserError(f"{flag} {path} is a directory: pass the control-vector file in it{hint}")
    if not path.is_file():
        raise UserError(f"{flag} {path} not found: pass a llama.cpp control-vector GGUF (`softfold distill --method "
                        f"steering` writes OUT/{CONTROL_VECTOR_FILE})")
    fields, tensors = _read_gguf(path, flag)
    if fields.get("general.architecture") != ARCHITECTURE:
        raise UserError(f"{flag} {path} is a GGUF of architecture {fields.get('general.architecture')!r}, not a "
                        f"llama.cpp control vector ({ARCHITECTURE!r}); a model GGUF goes to --model")
    hint, expected = fields.get(MODEL_HINT), llama_cpp_architecture(config)
    if hint is not None and hint != expected:
        raise UserError(f"{flag} {path} was made for a {hint} model ({MODEL_HINT}), this model is {expected}: pass "
                        "the model it was made for")
    if not tensors:
        raise UserError(f"{flag} {path} holds no direction.<layer> tensors: it steers nothing")
    vectors = {}
    for name, (kind, values) in tensors.items():
        layer = _layer_of(name, path, flag)
        check_layers([layer], config.num_hidden_layers, f"{flag} {path} direction.{layer}")
        if kind != "F32" or values.ndim != 1:
            raise UserError(f"{flag} {path}: {name} is {kind} of shape {list(values.shape)}; llama.cpp reads F32 "
                            "vectors only: write it as float32")
        if values.shape[0] != config.hidden_size:
            raise UserError(f"{flag} {path}: {name} has {values.shape[0]} values, this model's hidden size is "
                            f"{config.hidden_size}: it was made for a model of another width")
        vector = torch.tensor(np.array(values, dtype=np.float32))
        if not torch.isfinite(vector).all():
            raise UserError(f"{flag} {path}: {name} holds NaN or Inf values: recompute or re-save it")
        vectors[layer] = vector
    return SteeringVectors(path, hint, dict(sorted(vectors.items())), file_sha256(path))


def _read_gguf(path: Path, flag: str) -> tuple[dict, dict[str, tuple[str, np.ndarray]]]:
    """(string and integer metadata, {tensor name: (type name, values)}) of a GGUF file."""
    from gguf import GGUFReader

    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise UserError(f"{flag} {path} is not a GGUF file (no GGUF magic): pass a llama.cpp control vector")
    try:
        reader = GGUFReader(str(path))
        fields = {name: field.contents() for name, field in reader.fields.items()}
        tensors = {t.name: (t.tensor_type.name, np.array(t.data)) for t in reader.tensors}
    except Exception as e:  # gguf raises ValueError, struct and numpy errors on a truncated or corrupt file
        raise UserError(f"{flag} {path} is not a readable GGUF file ({e}): it may be truncated; copy or write it "
                        "again") from None
    return fields, tensors


def _layer_of(name: str, path: Path, flag: str) -> int:
    prefix, _, index = name.partition(".")
    if prefix != "direction" or not index.isdigit():
        raise UserError(f"{flag} {path} holds tensor {name!r}: a control vector holds only direction.<layer> tensors")
    return int(index)


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """A transformers *ForCausalLM's decoder blocks."""
    return getattr(model, model.base_model_prefix).layers


def add_steering(model: torch.nn.Module, vectors: dict[int, torch.Tensor]) -> list:
    """Forward hooks adding vectors[N] to the output of block N, as llama.cpp adds direction.N; their handles (to
    remove them)."""
    blocks = decoder_layers(model)
    return [blocks[layer].register_forward_hook(_adding(vector)) for layer, vector in sorted(vectors.items())]


@contextmanager
def steered(model: torch.nn.Module, vectors: dict[int, torch.Tensor]):
    """`model` with the vectors added (`add_steering`) inside the block only."""
    handles = add_steering(model, vectors)
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()


def _adding(vector: torch.Tensor):
    def hook(module, args, output):
        if isinstance(output, tuple):  # decoder layers of older transformers return (hidden_states, ...)
            return (output[0] + vector.to(output[0].dtype), *output[1:])
        return output + vector.to(output.dtype)

    return hook

