"""`softfold demo`'s models: each shipped soft prompt belongs to its model (the export's own check)."""
import pytest

from softfold.cli.demo import DEMOS
from softfold.inputs.named_models import resolve_model
from softfold.inputs.read import read_inputs


@pytest.mark.integration  # reads the real models (Gemma 3 270M is assembled from its wheels on first use)
@pytest.mark.parametrize("name", list(DEMOS))
def test_each_demo_prompt_was_made_for_its_model(name):
    demo = DEMOS[name]
    model = resolve_model(demo.model)
    inputs = read_inputs(model, soft_prompt=demo.soft_prompt)
    inputs.soft_prompt.trained_for.check(model, inputs.model.config, demo.soft_prompt, "soft prompt")  # raises if not
    assert inputs.soft_prompt.num_virtual_tokens == {"smollm2-135m": 100, "gemma3-270m": 20}[name]
