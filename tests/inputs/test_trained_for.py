"""The base model an adapter names: other layer or head counts refused, another name refused, the same model under
its GGUF quantization suffix or its folder's name accepted."""
from pathlib import Path
from types import SimpleNamespace

import pytest

from softfold.errors import UserError
from softfold.inputs.trained_for import TrainedFor

CONFIG = SimpleNamespace(num_hidden_layers=30, num_attention_heads=9, _name_or_path="")


def test_what_adapter_config_json_states_is_read():
    stated = TrainedFor.stated_in({"base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct", "num_layers": 30})
    assert stated == TrainedFor("HuggingFaceTB/SmolLM2-135M-Instruct", 30, None)
    assert TrainedFor.stated_in({}) == TrainedFor(None)


def test_the_same_model_under_another_file_name_passes():
    gguf = Path("/models/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
    TrainedFor("HuggingFaceTB/SmolLM2-135M-Instruct", 30, 9).check(gguf, CONFIG, Path("p"), "soft prompt")
    TrainedFor(None).check(gguf, CONFIG, Path("p"), "soft prompt")  # nothing stated, nothing to hold against


def test_another_model_is_refused_naming_what_differs():
    model = Path("/models/llama.gguf")
    with pytest.raises(UserError, match="trained for a model with num_layers=16, but /models/llama.gguf has 30"):
        TrainedFor(None, 16).check(model, CONFIG, Path("p"), "soft prompt")
    with pytest.raises(UserError, match="adapter q was trained for 'gemma-3-270m', not .* --trust-base-model"):
        TrainedFor("gemma-3-270m").check(model, CONFIG, Path("q"), "adapter")
