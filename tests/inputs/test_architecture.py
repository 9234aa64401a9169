"""The settings the export graphs compute: anything else refused up front, one line naming the setting."""
from types import SimpleNamespace

import pytest

from softfold.errors import UserError
from softfold.inputs.architecture import activation_of, check_config, check_positions


def config(model_type: str = "llama", **settings) -> SimpleNamespace:
    return SimpleNamespace(**{"model_type": model_type, "hidden_act": "silu", "max_position_embeddings": 4096,
                              **settings})


def test_the_supported_settings_pass():
    check_config(config(rope_parameters={"rope_type": "llama3", "factor": 8.0}))
    check_config(config("qwen2", attention_bias=True))  # Qwen2's q/k/v bias is computed
    gemma = config("gemma3_text", hidden_activation="gelu_pytorch_tanh",
                   rope_parameters={"full_attention": {"rope_type": "default"}, "sliding_attention": {}})
    check_config(gemma)
    assert activation_of(gemma) == "gelu_pytorch_tanh"  # Gemma names it hidden_activation


@pytest.mark.parametrize("model_type,settings,needle", [
    ("mistral", {}, "architecture 'mistral' is not supported yet"),
    ("phi3", {"rope_parameters": {"rope_type": "longrope"}}, "RoPE scaling 'longrope' is not supported"),
    ("llama", {"rope_parameters": {"partial_rotary_factor": 0.5}}, "partial_rotary_factor=0.5"),
    ("llama", {"hidden_act": "relu"}, "hidden_act 'relu' is not supported"),
    ("llama", {"final_logit_softcapping": 30.0}, "final_logit_softcapping=30.0"),
    ("llama", {"mlp_bias": True}, "mlp_bias / attention_bias"),
])
def test_a_setting_the_graphs_do_not_compute_is_refused(model_type, settings, needle):
    with pytest.raises(UserError, match=needle):
        check_config(config(model_type, **settings))


def test_the_context_fits_the_positions_and_no_window_cuts_into_it():
    check_positions(config(), 100, 2048)
    with pytest.raises(UserError, match="exceed the model's 4096: pass --max-context 3996 or less"):
        check_positions(config(), 100, 4000)
    with pytest.raises(UserError, match="sliding window of 1024 tokens.*--max-context 924 or less"):
        check_positions(config("qwen2", sliding_window=1024), 100, 2048)
    check_positions(config("gemma3_text", sliding_window=512), 100, 2048)  # Gemma 3's windows are computed
