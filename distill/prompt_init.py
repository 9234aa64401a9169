"""Where a trained soft prompt starts: the embeddings of a safety instruction's tokens (PEFT's TEXT init), and a PEFT
prompt-tuning checkpoint holding them, untrained (benchmarks/smollm_export.py times one)."""
from pathlib import Path

import torch

from softfold.inputs.base_model import BaseModel

SAFETY_INIT_TEXT = (
    "You are a helpful and safe assistant. Answer harmless questions helpfully and concisely. "
    "Refuse requests that could hurt people, such as violence, weapons, crime or harassment."
)


@torch.no_grad()
def text_embeddings(base: BaseModel, text: str, num_virtual_tokens: int) -> torch.Tensor:
    """PEFT's TEXT init: the embeddings of `text`'s tokens, repeated to fill N virtual tokens."""
    ids = base.tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = (ids * (num_virtual_tokens // len(ids) + 1))[:num_virtual_tokens]
    return base.model.get_input_embeddings().weight[ids].detach().clone()


@torch.no_grad()
def text_initialized_prompt(base: BaseModel, text: str, num_virtual_tokens: int, out: Path) -> Path:
    """A PEFT prompt-tuning checkpoint holding the TEXT-initialized embeddings."""
    from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

    config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=num_virtual_tokens,
                                prompt_tuning_init=PromptTuningInit.RANDOM)
    model = get_peft_model(base.model, config)
    model.prompt_encoder["default"].embedding.weight.copy_(text_embeddings(base, text, num_virtual_tokens))
    model.save_pretrained(out)
    return Path(out)
