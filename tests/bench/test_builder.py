"""The ORT GenAI builder's shim: Gemma 3's nested RoPE settings stated flat, other configs untouched."""


def test_the_builder_shim_states_gemma3s_nested_rope_flat_and_leaves_other_configs_alone():
    from transformers import Gemma3TextConfig, LlamaConfig

    from softfold.bench.builder import flat_rope

    gemma = flat_rope(Gemma3TextConfig(num_hidden_layers=6))
    assert gemma.rope_parameters["rope_type"] == "default" and gemma.rope_theta == 1_000_000.0
    assert gemma.rope_local_base_freq == 10_000.0
    llama = LlamaConfig(rope_theta=500_000.0)
    assert flat_rope(llama).rope_parameters == LlamaConfig(rope_theta=500_000.0).rope_parameters
