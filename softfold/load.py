"""Load the two inputs (DESIGN.md section 1): a base model and a PEFT prompt-tuning soft prompt.

Safe by construction: no trust_remote_code, no pickle. Checkpoints in .bin/.pt form are refused
before anything reads them.
"""
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from jinja2.exceptions import TemplateError
from safetensors import safe_open
from tqdm import tqdm

from softfold import gguf_cache
from softfold.gguf_header import gguf_metadata
from softfold.errors import UserError
from softfold.models import (DEFAULT_GGUF, cache_dir, default_model_path, named_chat_template,  # noqa: F401
                             named_model_for, resolve_model)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3", "phi3", "gemma3_text")  # what export/model.py computes
SUPPORTED_ROPE_TYPES = ("default", "llama3")  # static tables, no attention scaling: what both graphs compute
SUPPORTED_ACTIVATIONS = ("silu", "gelu_pytorch_tanh")
WINDOWED_ARCHITECTURES = ("gemma3_text",)  # whose sliding-window layers both graphs compute


@dataclass
class BaseModel:
    model: torch.nn.Module  # transformers *ForCausalLM, fp32, eval mode
    tokenizer: object  # transformers fast tokenizer, with chat_template
    source: str

    @property
    def config(self):
        return self.model.config

    def release_weights(self) -> None:
        """Free the weights (moved to the meta device) once no step needs them; the config, generation config and
        tokenizer stay readable. An export does this before lowering, its memory peak."""
        self.model.to("meta")


@dataclass(frozen=True)
class SoftPrompt:
    embeddings: torch.Tensor  # [N, hidden], fp32
    path: Path
    sha256: str

    @property
    def num_virtual_tokens(self) -> int:
        return self.embeddings.shape[0]


def refuse_pickle(files: list[Path], what: str) -> None:
    pickles = [f.name for f in files if f.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise UserError(f"{what} holds pickle checkpoint(s) {pickles}; softfold never unpickles: "
                        "convert them to .safetensors first")


def read_json_object(path: Path, what: str) -> dict:
    """A JSON file that must hold an object, or a one-line UserError naming it."""
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{what} {path} is not valid JSON ({e}): restore or re-create it") from None
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} holds a JSON {type(data).__name__}, expected an object")
    return data


def check_safetensors(path: Path, what: str) -> list[str]:
    """The tensor names of a safetensors file whose header and size are whole; else a one-line UserError."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return list(f.keys())
    except Exception as e:  # safetensors raises its own SafetensorError (and OSError for unreadable files)
        raise UserError(f"{what} {path} is not a readable safetensors file ({e}): it may be truncated or "
                        "corrupt; copy or save it again") from None


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def _locate(path: Path) -> tuple[Path, dict]:
    """(directory, from_pretrained kwargs) for a model directory or GGUF file, its files checked before loading;
    refuses pickles."""
    if not path.exists():
        raise UserError(f"model not found: {path}: pass a Hugging Face model directory or a .gguf file")
    if path.is_file() and path.suffix == ".gguf":
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                raise UserError(f"model {path} is named .gguf but is not a GGUF file (no GGUF magic): "
                                "download or convert it again")
        entry = _cache_entry(path)
        if entry is not None and gguf_cache.cached(entry):
            return _locate(entry)
        return path.parent, {"gguf_file": path.name}
    if not path.is_dir():
        raise UserError(f"model {path} is neither a Hugging Face model directory nor a .gguf file")
    files = list(path.iterdir())
    weights = [f for f in files if f.suffix == ".safetensors"]
    if not weights:
        refuse_pickle(files, f"model directory {path}")
        raise UserError(f"model directory {path} has no *.safetensors weights")
    if not (path / "config.json").exists():
        raise UserError(f"model directory {path} has no config.json")
    check_architecture(read_json_object(path / "config.json", "model config").get("model_type"))
    for weight_file in weights:
        check_safetensors(weight_file, "model weights")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(f"model directory {path} has no tokenizer ({' or '.join(TOKENIZER_FILES)}): "
                        "save the tokenizer beside the weights (tokenizer.save_pretrained)")
    return path, {}


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def check_architecture(model_type: str | None) -> None:
    if model_type not in SUPPORTED_ARCHITECTURES:
        raise UserError(f"model architecture '{model_type}' is not supported yet; "
                        f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}")


def check_config(config) -> None:
    """The settings of a supported architecture that export/model.py computes; others are refused, never exported
    wrong."""
    arch = config.model_type
    check_architecture(arch)
    ropes = getattr(config, "rope_parameters", None) or {}
    if arch in WINDOWED_ARCHITECTURES:  # one table per layer type
        ropes = {f" ({layer_type})": rope for layer_type, rope in ropes.items()}
    else:
        ropes = {"": ropes}
    for where, rope in ropes.items():
        rope_type = rope.get("rope_type", "default")
        if rope_type not in SUPPORTED_ROPE_TYPES:
            raise UserError(f"{arch} RoPE scaling '{rope_type}'{where} is not supported yet; supported rope_type: "
                            f"{', '.join(SUPPORTED_ROPE_TYPES)}")
        if rope.get("partial_rotary_factor", 1.0) != 1.0:
            raise UserError(f"{arch} partial_rotary_factor={rope['partial_rotary_factor']} (RoPE on part of each "
                            "head) is not supported yet; supported: 1.0 (RoPE on the whole head)")
    activation = activation_of(config)
    if activation not in SUPPORTED_ACTIVATIONS:
        raise UserError(f"{arch} hidden_act '{activation}' is not supported yet; supported: "
                        f"{', '.join(SUPPORTED_ACTIVATIONS)}")
    for softcap in ("attn_logit_softcapping", "final_logit_softcapping"):
        if getattr(config, softcap, None):
            raise UserError(f"{arch} {softcap}={getattr(config, softcap)} is not supported yet; supported: none")
    if getattr(config, "use_bidirectional_attention", False):
        raise UserError(f"{arch} use_bidirectional_attention is not supported; supported: causal attention")
    if getattr(config, "mlp_bias", False) or (arch != "qwen2" and getattr(config, "attention_bias", False)):
        raise UserError(f"{arch} with mlp_bias / attention_bias is not supported yet; supported: no MLP or output "
                        "projection bias (Qwen2's q/k/v bias is)")


def activation_of(config) -> str:
    """The gated MLP's activation: Gemma's configs name it hidden_activation, the others hidden_act."""
    return getattr(config, "hidden_activation", None) or getattr(config, "hidden_act", "silu")


def check_positions(config, n_virtual: int, max_context: int) -> None:
    """The soft prompt plus --max-context fit the model's positions, and no sliding window cuts into them (the
    graphs attend to every cached position)."""
    positions = n_virtual + max_context
    if positions > config.max_position_embeddings:
        raise UserError(f"--max-context {max_context} + {n_virtual} soft-prompt positions exceed the model's "
                        f"{config.max_position_embeddings}: pass --max-context "
                        f"{config.max_position_embeddings - n_virtual} or less")
    window = getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", True) else None
    if window and window < positions and config.model_type not in WINDOWED_ARCHITECTURES:
        raise UserError(f"{config.model_type} attends through a sliding window of {window} tokens, which is not "
                        f"supported yet: pass --max-context {window - n_virtual} or less, so the window never cuts in")


def read_config(path: str | Path):
    """The model's config, checked for a supported architecture, without loading weights."""
    return _read_config(path, *_locate(Path(path)))


def _read_config(path: str | Path, location: Path, kwargs: dict):
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(location, trust_remote_code=False, **kwargs)
    except (ValueError, KeyError, OSError) as e:
        raise UserError(f"model {path}: its config cannot be read ({_first_line(e)})") from None
    if named_model_for(Path(path)) is not None:
        config._name_or_path = str(path)
    check_config(config)
    return config


def load_base(path: str | Path, chat_template: str | Path | None = None) -> BaseModel:
    """A Hugging Face model directory (safetensors) or a GGUF file (dequantized to fp32; a named model's from
    softfold's cache after its first load). `chat_template` (a Jinja file) replaces the model's own; a model without
    one needs it, unless softfold ships one for it (a named model)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # softfold's own stage bar covers loading
    location, kwargs = _locate(Path(path))
    _read_config(path, location, kwargs)
    template = chat_template_text(path, location, kwargs, chat_template)
    entry = _cache_entry(Path(path)) if kwargs else None
    if entry is not None:
        tqdm.write(f"dequantizing {Path(path).name} to fp32 (minutes, once: cached in {entry})", file=sys.stderr)
    model, tokenizer = _load_pretrained(path, location, kwargs)
    if entry is not None:
        gguf_cache.save_entry(model, tokenizer, entry)
    if named_model_for(Path(path)) is not None:  # named by its file, cached or not: what soft prompts record
        model.name_or_path = model.config._name_or_path = str(path)
    if template is not None:
        tokenizer.chat_template = template
    if len(tokenizer) > model.config.vocab_size:
        raise UserError(f"model {path}: its tokenizer has {len(tokenizer)} tokens but the model's vocabulary "
                        f"{model.config.vocab_size}: the tokenizer belongs to another model")
    check_chat_template(tokenizer, path)
    return BaseModel(model.eval(), tokenizer, str(path))


def _load_pretrained(path: str | Path, location: Path, kwargs: dict) -> tuple[torch.nn.Module, object]:
    """The fp32 model and its tokenizer from a model directory or (kwargs gguf_file) a GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(
            location, dtype=torch.float32, trust_remote_code=False, use_safetensors=not kwargs, **kwargs)
    except (RuntimeError, ValueError) as e:
        raise UserError(f"model {path}: its weights do not load into its config ({_first_line(e)})") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=False, **kwargs)
    except Exception as e:  # the tokenizers library raises bare Exceptions for malformed files
        raise UserError(f"model {path}: its tokenizer files do not load ({_first_line(e)})") from None
    if kwargs:  # GGUF weights are dequantized: fp32 from here on, and saveable as such
        model.config.quantization_config = None
        model.hf_quantizer = None
    return model, tokenizer


def _cache_entry(gguf: Path) -> Path | None:
    """Where a named model's GGUF is kept dequantized (see gguf_cache); None for other models, loaded as they are."""
    return gguf_cache.entry_dir(gguf, cache_dir()) if named_model_for(gguf) is not None else None


def check_chat_template_input(path: str | Path, chat_template: str | Path | None = None) -> None:
    """Before any heavy work: the model has a chat template, or one is given (readable) or shipped for it."""
    chat_template_text(path, *_locate(Path(path)), chat_template)


def chat_template_text(path: str | Path, location: Path, kwargs: dict,
                       chat_template: str | Path | None) -> str | None:
    """The template replacing the model's own: the given file's, else the one softfold ships for a named model that
    has none; None keeps the model's. A one-line UserError when the model has none and none is given."""
    if chat_template is None and has_chat_template(location, kwargs):
        return None
    chat_template = chat_template or named_chat_template(Path(path))
    if chat_template is None:
        raise UserError(f"model {path} has no chat template: pass --chat-template FILE (a Jinja chat template "
                        "in the model's turn format)")
    return read_chat_template(Path(chat_template))


def has_chat_template(location: Path, kwargs: dict) -> bool:
    """The model's files carry a chat template: a GGUF's tokenizer.chat_template, a directory's
    tokenizer_config.json chat_template or chat_template.jinja. Read from the files, without loading the model."""
    if kwargs:
        return bool(gguf_metadata(Path(location) / kwargs["gguf_file"]).get("tokenizer.chat_template"))
    location = Path(location)
    if (location / "chat_template.jinja").is_file():
        return True
    config = location / "tokenizer_config.json"
    return config.is_file() and bool(read_json_object(config, "tokenizer config").get("chat_template"))


def read_chat_template(path: Path) -> str:
    """A --chat-template file's text, or a one-line UserError naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"--chat-template {path} not found: pass a Jinja chat template file") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as e:
        raise UserError(f"--chat-template {path} is not a readable text file ({type(e).__name__}): pass a Jinja "
                        "chat template file") from None
    if not text.strip():
        raise UserError(f"--chat-template {path} is empty: pass a Jinja chat template file")
    return text


def check_chat_template(tokenizer, path: str | Path) -> None:
    """The template renders a user turn in transformers' sandbox, as every later step needs."""
    try:
        tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    except TemplateError as e:
        raise UserError(f"model {path}: its chat template does not render ({type(e).__name__}: {e}); "
                        "fix chat_template in tokenizer_config.json") from None


def tensor_sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().contiguous().float().numpy().tobytes()).hexdigest()


def load_soft_prompt(path: str | Path, hidden_size: int) -> SoftPrompt:
    """A PEFT prompt-tuning adapter directory: adapter_config.json + adapter_model.safetensors."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"soft prompt not found: {path}: pass a PEFT prompt-tuning adapter directory")
    config_file, weights_file = path / "adapter_config.json", path / "adapter_model.safetensors"
    if not weights_file.exists():
        refuse_pickle(list(path.iterdir()), f"soft prompt {path}")
        raise UserError(f"soft prompt {path} has no adapter_model.safetensors")
    if not config_file.exists():
        raise UserError(f"soft prompt {path} has no adapter_config.json")
    config = read_json_object(config_file, "soft prompt config")
    if config.get("peft_type") != "PROMPT_TUNING":
        raise UserError(f"soft prompt {path} is a {config.get('peft_type')} adapter, expected PROMPT_TUNING "
                        "(a LoRA adapter goes to --adapter)")
    names = check_safetensors(weights_file, "soft prompt weights")
    if "prompt_embeddings" not in names:
        raise UserError(f"{weights_file} has no 'prompt_embeddings' tensor (found {names})")
    with safe_open(weights_file, framework="pt") as f:
        emb = f.get_tensor("prompt_embeddings").float()
    n = config.get("num_virtual_tokens")
    if not isinstance(n, int) or n < 1:
        raise UserError(f"soft prompt {path} has num_virtual_tokens={n!r}: a safety soft prompt needs at least one "
                        "virtual token")
    if emb.ndim != 2 or emb.shape[0] != n:
        raise UserError(f"soft prompt {path}: prompt_embeddings has shape {tuple(emb.shape)}, "
                        f"expected [num_virtual_tokens={n}, hidden]")
    if config.get("token_dim", emb.shape[1]) != emb.shape[1]:
        raise UserError(f"soft prompt {path}: adapter_config.json says token_dim={config['token_dim']} but "
                        f"prompt_embeddings has {emb.shape[1]} columns: the config belongs to another adapter")
    if emb.shape[1] != hidden_size:
        raise UserError(f"soft prompt {path} has hidden size {emb.shape[1]} but the model's is {hidden_size}: "
                        "it was trained for a different base model")
    if not torch.isfinite(emb).all():
        raise UserError(f"soft prompt {path} contains NaN or Inf values: retrain or re-export it")
    return SoftPrompt(emb, path, tensor_sha256(emb))


def _model_names(model: Path, config) -> set[str]:
    """What a soft prompt's base_model_name_or_path may call this model: its file or directory name, a GGUF's
    directory, the name its config was saved under; lowercase, without extension or GGUF quantization suffix."""
    names = {model.name, getattr(config, "_name_or_path", "") or ""}
    if model.suffix == ".gguf":
        names.add(model.parent.name)
    return {_model_name(n) for n in names if n}


def _model_name(name: str) -> str:
    stem = Path(name.split(" (")[0].rstrip("/")).name.lower()
    stem = re.sub(r"\.gguf$", "", stem)
    return re.sub(r"[.-](q\d\w*|f16|f32|bf16)$", "", stem)


def check_base_model(adapter_dir: Path, model: Path, config, what: str = "soft prompt") -> None:
    """The PEFT adapter (a soft prompt, a LoRA) was trained for this model: PEFT records the base model's name, and
    prompt tuning its layer and head counts."""
    adapter = read_json_object(Path(adapter_dir) / "adapter_config.json", f"{what} config")
    for key, ours in (("num_layers", config.num_hidden_layers), ("num_attention_heads", config.num_attention_heads)):
        if adapter.get(key, ours) != ours:
            raise UserError(f"{what} {adapter_dir} was trained for a model with {key}={adapter[key]}, but "
                            f"{model} has {ours}: pass the model it was trained for")
    trained_for = adapter.get("base_model_name_or_path")
    if trained_for and _model_name(trained_for) not in _model_names(Path(model), config):
        raise UserError(f"{what} {adapter_dir} was trained for '{trained_for}', not {model}: pass that model, "
                        "or --trust-base-model if this is the same model renamed or moved")
