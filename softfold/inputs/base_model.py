"""The base model (docs/inputs.md): a Hugging Face model directory (safetensors) or a GGUF file, located and
checked before its weights load, then loaded in fp32. No trust_remote_code, no pickle."""
import re
import sys
from dataclasses import dataclass
from pathlib import Path
import torch
from tqdm import tqdm
from softfold.inputs import gguf_cache
from softfold.errors import UserError
from softfold.inputs.named_models import (cache_dir, named_model_for)
from softfold.inputs.architecture import check_architecture, check_config
from softfold.inputs.chat_template import chat_template_text, check_chat_template, end_of_turn_id
from softfold.inputs.safe_files import check_safetensors, read_json_object, refuse_pickle


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


def eos_ids(base: BaseModel) -> list[int]:
    """Stop ids: the generation config's EOS id(s), the tokenizer's EOS, and the token the chat template ends a
    reply with (a base model's EOS ends a document, not a turn: Gemma's <eos> vs <end_of_turn>)."""
    ids = base.model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    for extra in (base.tokenizer.eos_token_id, end_of_turn_id(base.tokenizer)):
        if extra is not None and extra not in ids:
            ids.append(extra)
    return ids


def _bos_id(base: BaseModel) -> int:
    bos = base.tokenizer.bos_token_id
    return bos if bos is not None else (base.config.bos_token_id or 0)
