"""`softfold demo`'s models: each shipped soft prompt belongs to its model (the export's own check)."""
import pytest

from softfold.cli.demo import DEMOS
from softfold.inputs.base_model import check_base_model, read_config
from softfold.inputs.named_models import resolve_model
from softfold.inputs.soft_prompt import load_soft_prompt


@pytest.mark.integration  # reads the real models (Gemma 3 270M is assembled from its wheels on first use)
@pytest.mark.parametrize("name", list(DEMOS))
def test_each_demo_prompt_was_made_for_its_model(name):
    demo = DEMOS[name]
    model = resolve_model(demo.model)
    config = read_config(model)
    check_base_model(demo.soft_prompt, model, config)  # raises when the prompt names another model
    prompt = load_soft_prompt(demo.soft_prompt, config.hidden_size)
    assert prompt.num_virtual_tokens == {"smollm2-135m": 100, "gemma3-270m": 20}[name]
