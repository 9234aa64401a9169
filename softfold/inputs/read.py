"""A command's inputs read together: the base model located and its config and chat template checked, then each of
the soft prompt, LoRA adapter and control vector checked against that config; seconds, no weights loaded. What a
command receives from here on is these typed objects, never the paths again."""
from dataclasses import dataclass
from pathlib import Path

from softfold.inputs.base_model import ModelSource, read_model
from softfold.inputs.control_vector import SteeringVectors, load_steering
from softfold.inputs.lora import LoraAdapter, load_lora
from softfold.inputs.soft_prompt import SoftPrompt, load_soft_prompt


@dataclass(frozen=True)
class Inputs:
    model: ModelSource
    soft_prompt: SoftPrompt | None = None  # a PEFT prompt-tuning checkpoint
    adapter: LoraAdapter | None = None  # a PEFT LoRA
    steering: SteeringVectors | None = None  # a llama.cpp control vector


def read_inputs(model: str | Path, chat_template: str | Path | None = None, soft_prompt: str | Path | None = None,
                adapter: str | Path | None = None, steering_vector: str | Path | None = None) -> Inputs:
    """Each input given, read and checked in that order (the model first: the others are checked against its
    config); a one-line UserError for the first problem."""
    source = read_model(model, chat_template)
    config = source.config
    return Inputs(source, load_soft_prompt(soft_prompt, config.hidden_size) if soft_prompt is not None else None,
                  load_lora(adapter, config) if adapter is not None else None,
                  load_steering(steering_vector, config) if steering_vector is not None else None)
