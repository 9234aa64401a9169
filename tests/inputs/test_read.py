"""A command's inputs read together: the model first, then each of the others against its config; the first
problem is the one reported."""
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tiny import write_soft_prompt_files

from softfold.errors import UserError
from softfold.inputs import read as read_module
from softfold.inputs.base_model import ModelSource
from softfold.inputs.read import Inputs, read_inputs


@pytest.fixture
def model(monkeypatch) -> ModelSource:
    """A model read without files: a 64-wide, 2-block llama config."""
    config = SimpleNamespace(hidden_size=64, num_hidden_layers=2, model_type="llama")
    source = ModelSource(Path("m"), Path("m"), None, config, None)
    monkeypatch.setattr(read_module, "read_model", lambda path, chat_template=None: source)
    return source


def test_each_input_is_read_against_the_models_config(model, tmp_path):
    prompt = write_soft_prompt_files(tmp_path / "p", torch.zeros(3, 64))
    inputs = read_inputs("m", None, prompt)
    assert inputs.model is model and inputs.soft_prompt.num_virtual_tokens == 3
    assert (inputs.adapter, inputs.steering) == (None, None) and read_inputs("m") == Inputs(model)


def test_the_first_problem_is_reported(model, tmp_path):
    wide = write_soft_prompt_files(tmp_path / "p", torch.zeros(3, 96))
    with pytest.raises(UserError, match="hidden size 96 but the model's is 64"):
        read_inputs("m", None, wide, tmp_path / "no-lora", tmp_path / "no-vector.gguf")
    with pytest.raises(UserError, match="--adapter .*no-lora not found"):
        read_inputs("m", None, None, tmp_path / "no-lora", tmp_path / "no-vector.gguf")
