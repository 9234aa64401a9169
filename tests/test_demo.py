"""`softfold demo`'s models: each shipped soft prompt belongs to its model (the export's own check)."""
import pytest

from softfold.cli.demo import DEMO_MODELS
from softfold.demo import DEMOS
from softfold.load import check_base_model, load_soft_prompt, read_config
from softfold.models import resolve_model


def test_the_cli_offers_every_demo():
    assert DEMO_MODELS == tuple(DEMOS)


@pytest.mark.parametrize("name", DEMO_MODELS)
def test_each_demo_prompt_was_made_for_its_model(name):
    demo = DEMOS[name]
    model = resolve_model(demo.model)
    config = read_config(model)
    check_base_model(demo.soft_prompt, model, config)  # raises when the prompt names another model
    prompt = load_soft_prompt(demo.soft_prompt, config.hidden_size)
    assert prompt.num_virtual_tokens == {"smollm2-135m": 100, "gemma3-270m": 20}[name]
