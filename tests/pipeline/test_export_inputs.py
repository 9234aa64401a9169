"""An export's inputs, read once: the flags that go together, --keep-8bit's layers, --prefix-kv's conditions, all
refused in seconds; what later stages receive."""
from pathlib import Path

import pytest

from softfold.errors import UserError
from softfold.export.config import Folding, QuantConfig, Recipe, Target
from softfold.pipeline.export_inputs import calibrated_prefix, check_flags, check_keep_8bit, read_export_inputs
from softfold.pipeline.options import ExportOptions


def options(**changes) -> ExportOptions:
    return ExportOptions(**{"model": Path("m"), "soft_prompt": Path("p"), "out": Path("out"), **changes})


def test_something_is_added_unless_nothing_is_asked_for():
    check_flags(options())
    check_flags(options(soft_prompt=None, base_only=True))
    with pytest.raises(UserError, match="--base-only exports the model with nothing added: drop --soft-prompt"):
        check_flags(options(base_only=True))
    with pytest.raises(UserError, match="export needs --soft-prompt DIR"):
        check_flags(options(soft_prompt=None))
    with pytest.raises(UserError, match="--folding virtual-tokens folds a soft prompt"):
        check_flags(options(soft_prompt=None, adapter=Path("l"), folding=Folding.VIRTUAL_TOKENS))


def test_keep_8bit_names_the_models_layers():
    check_keep_8bit(("lm_head", "layers.1", "layers.0.mlp"), 2)
    with pytest.raises(UserError, match="--keep-8bit layers.7: no such layer; this model has lm_head and layers.0 to "
                                        "layers.1"):
        check_keep_8bit(("layers.7",), 2)


def test_a_calibrated_prefix_takes_a_soft_prompt_folded_as_prefix_kv():
    assert calibrated_prefix(options(), None) is None  # none asked for
    with pytest.raises(UserError, match="pass --soft-prompt and neither --adapter nor --steering-vector"):
        calibrated_prefix(options(prefix_kv=Path("k"), adapter=Path("l")), object())
    with pytest.raises(UserError, match="it needs --folding prefix-kv, got virtual-tokens"):
        calibrated_prefix(options(prefix_kv=Path("k"), folding=Folding.VIRTUAL_TOKENS), object())


def test_what_the_stages_receive(tiny_models, soft_prompts, tmp_path):
    opts = options(model=tiny_models["llama"], soft_prompt=soft_prompts[("llama", 16)], out=tmp_path / "b",
                   quant=QuantConfig(Target.EXECUTORCH, Recipe.X8DA4W))
    inputs = read_export_inputs(opts)
    assert inputs.model.path == tiny_models["llama"] and inputs.soft_prompt.num_virtual_tokens == 16
    assert (inputs.adapter, inputs.steering, inputs.prefix, inputs.safety_eval) == (None, None, None, None)
    assert inputs.source_types == {} and inputs.facts.license is None  # a model directory, no GGUF, no card
