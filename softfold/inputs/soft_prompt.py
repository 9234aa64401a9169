"""The soft prompt (docs/inputs.md): a PEFT prompt-tuning adapter directory, adapter_config.json +
adapter_model.safetensors holding `prompt_embeddings` [N, hidden]; checked whole before any heavy work."""
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from softfold.errors import UserError
from softfold.inputs.safe_files import check_safetensors, read_json_object, refuse_pickle
from softfold.inputs.trained_for import TrainedFor


@dataclass(frozen=True)
class SoftPrompt:
    embeddings: torch.Tensor  # [N, hidden], fp32
    path: Path
    sha256: str  # of the embeddings, as fp32
    trained_for: TrainedFor = TrainedFor(None)  # the base model its adapter_config.json names

    @property
    def num_virtual_tokens(self) -> int:
        return self.embeddings.shape[0]


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
    return SoftPrompt(emb, path, tensor_sha256(emb), TrainedFor.stated_in(config))
