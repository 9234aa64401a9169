"""The base model (docs/inputs.md): a Hugging Face model directory (safetensors), a GGUF file, or a named model's
assembled GGUF. `read_model` locates it and checks its files, config and chat template in seconds; the
`ModelSource` it returns is what every later step receives, and `ModelSource.load` loads the weights in fp32, once.
No trust_remote_code, no pickle."""
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from softfold.errors import UserError
from softfold.inputs import gguf_cache
from softfold.inputs.architecture import check_architecture, check_config
from softfold.inputs.chat_template import chat_template_text, check_chat_template, end_of_turn_id
from softfold.inputs.named_models import cache_dir, named_model_for
from softfold.inputs.safe_files import check_safetensors, read_json_object, refuse_pickle

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


@dataclass
class BaseModel:
    model: torch.nn.Module  # transformers *ForCausalLM, fp32, eval mode
    tokenizer: object  # transformers fast tokenizer, with chat_template

    @property
    def config(self):
        return self.model.config

    def release_weights(self) -> None:
        """Free the weights (moved to the meta device) once no step needs them; the config, generation config and
        tokenizer stay readable. An export does this before lowering, its memory peak."""
        self.model.to("meta")


@dataclass(frozen=True)
class ModelSource:
    """The base model before its weights load: where it is, its config (an architecture and settings the export
    graphs compute) and the chat template that replaces its own (None: its own). Read once, by `read_model`."""
    path: Path  # what --model named: a model directory, a .gguf file, or a named model's assembled file
    location: Path  # the directory transformers reads: `path`, a GGUF's folder, or a named GGUF's cached copy
    gguf_file: str | None  # the GGUF's name in `location`; None for a safetensors directory
    config: object  # transformers' PretrainedConfig, checked
    chat_template: str | None

    @property
    def gguf(self) -> bool:
        """Whether the model is a GGUF file (its source, even when a dequantized copy is read)."""
        return self.path.suffix == ".gguf"

    def load(self) -> BaseModel:
        """The fp32 model and its tokenizer (a GGUF dequantized; a named model's kept in softfold's cache after its
        first load), the chat template in place and rendering a user turn."""
        from transformers.utils import logging as hf_logging  # transformers loads with the weights, not before

        hf_logging.disable_progress_bar()  # softfold's own stage bar covers loading
        entry = _cache_entry(self.path) if self.gguf_file else None
        if entry is not None:
            tqdm.write(f"dequantizing {self.path.name} to fp32 (minutes, once: cached in {entry})", file=sys.stderr)
        model, tokenizer = _load_pretrained(self)
        if entry is not None:
            gguf_cache.save_entry(model, tokenizer, entry)
        if named_model_for(self.path) is not None:  # named by its file, cached or not: what soft prompts record
            model.name_or_path = model.config._name_or_path = str(self.path)
        if self.chat_template is not None:
            tokenizer.chat_template = self.chat_template
        if len(tokenizer) > model.config.vocab_size:
            raise UserError(f"model {self.path}: its tokenizer has {len(tokenizer)} tokens but the model's vocabulary "
                            f"{model.config.vocab_size}: the tokenizer belongs to another model")
        check_chat_template(tokenizer, self.path)
        return BaseModel(model.eval(), tokenizer)


def read_model(path: str | Path, chat_template: str | Path | None = None) -> ModelSource:
    """The model `path` names, its files, config and chat template checked, without loading weights.
    `chat_template` (a Jinja file) replaces the model's own; a model without one needs it, unless softfold ships one
    for it (a named model)."""
    path = Path(path)
    location, kwargs = _locate(path)
    config = _read_config(path, location, kwargs)
    template = chat_template_text(path, location, kwargs, chat_template)
    return ModelSource(path, location, kwargs.get("gguf_file"), config, template)


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


def _read_config(path: Path, location: Path, kwargs: dict):
    """The model's config, checked: an architecture and settings the export graphs compute."""
    from transformers import AutoConfig  # transformers loads when a command reads a model, not for --help

    try:
        config = AutoConfig.from_pretrained(location, trust_remote_code=False, **kwargs)
    except (ValueError, KeyError, OSError) as e:
        raise UserError(f"model {path}: its config cannot be read ({_first_line(e)})") from None
    if named_model_for(Path(path)) is not None:
        config._name_or_path = str(path)
    check_config(config)
    return config


def _load_pretrained(source: ModelSource) -> tuple[torch.nn.Module, object]:
    """The fp32 model and its tokenizer from a model directory or a GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # transformers loads with the weights

    path, location = source.path, source.location
    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
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


def eos_ids(base: BaseModel) -> list[int]:
    """Stop ids: the generation config's EOS id(s), the tokenizer's EOS, and the token the chat template ends a
    reply with (a base model's EOS ends a document, not a turn: Gemma's <eos> vs <end_of_turn>)."""
    ids = base.model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    for extra in (base.tokenizer.eos_token_id, end_of_turn_id(base.tokenizer)):
        if extra is not None and extra not in ids:
            ids.append(extra)
    return ids


def bos_id(base: BaseModel) -> int:
    """The id a prompt starts with: the tokenizer's BOS, else the config's, else 0."""
    bos = base.tokenizer.bos_token_id
    return bos if bos is not None else (base.config.bos_token_id or 0)
