"""The base model a PEFT adapter (a soft prompt, a LoRA) was trained for, as its adapter_config.json states it, held
against the model given: an adapter trained for another model is refused unless the user vouches for it."""
import re
from dataclasses import dataclass
from pathlib import Path

from softfold.errors import UserError


@dataclass(frozen=True)
class TrainedFor:
    """What adapter_config.json says of the base model: its name (PEFT records it for every adapter) and, for prompt
    tuning, its layer and head counts; None where it says nothing."""
    name: str | None
    num_layers: int | None = None
    num_attention_heads: int | None = None

    @classmethod
    def stated_in(cls, adapter_config: dict) -> "TrainedFor":
        return cls(adapter_config.get("base_model_name_or_path"), adapter_config.get("num_layers"),
                   adapter_config.get("num_attention_heads"))

    def check(self, model: Path, config, adapter_dir: Path, what: str) -> None:
        """A one-line UserError when the adapter at `adapter_dir` names another model than `model` (config its
        config): other layer or head counts, or another name (the same model renamed or moved passes with
        --trust-base-model)."""
        for key, ours in (("num_layers", config.num_hidden_layers),
                          ("num_attention_heads", config.num_attention_heads)):
            if getattr(self, key) not in (None, ours):
                raise UserError(f"{what} {adapter_dir} was trained for a model with {key}={getattr(self, key)}, but "
                                f"{model} has {ours}: pass the model it was trained for")
        if self.name and _model_name(self.name) not in _model_names(Path(model), config):
            raise UserError(f"{what} {adapter_dir} was trained for '{self.name}', not {model}: pass that model, "
                            "or --trust-base-model if this is the same model renamed or moved")


def _model_names(model: Path, config) -> set[str]:
    """What an adapter's base_model_name_or_path may call this model: its file or directory name, a GGUF's
    directory, the name its config was saved under; lowercase, without extension or GGUF quantization suffix."""
    names = {model.name, getattr(config, "_name_or_path", "") or ""}
    if model.suffix == ".gguf":
        names.add(model.parent.name)
    return {_model_name(n) for n in names if n}


def _model_name(name: str) -> str:
    stem = Path(name.split(" (")[0].rstrip("/")).name.lower()
    stem = re.sub(r"\.gguf$", "", stem)
    return re.sub(r"[.-](q\d\w*|f16|f32|bf16)$", "", stem)
