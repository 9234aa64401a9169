"""The architectures and settings the export graphs compute (export/model.py); any other is refused up front,
never exported wrong."""
from softfold.errors import UserError

SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3", "phi3", "gemma3_text")  # what export/model.py computes

SUPPORTED_ROPE_TYPES = ("default", "llama3")  # static tables, no attention scaling: what both graphs compute

SUPPORTED_ACTIVATIONS = ("silu", "gelu_pytorch_tanh")

WINDOWED_ARCHITECTURES = ("gemma3_text",)  # whose sliding-window layers both graphs compute


def check_architecture(model_type: str | None) -> None:
    if model_type not in SUPPORTED_ARCHITECTURES:
        raise UserError(f"model architecture '{model_type}' is not supported yet; "
                        f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}")


def check_config(config) -> None:
    """The settings of a supported architecture that export/model.py computes; others are refused, never exported
    wrong."""
    arch = config.model_type
    check_architecture(arch)
    ropes = getattr(config, "rope_parameters", None) or {}
    if arch in WINDOWED_ARCHITECTURES:  # one table per layer type
        ropes = {f" ({layer_type})": rope for layer_type, rope in ropes.items()}
    else:
        ropes = {"": ropes}
    for where, rope in ropes.items():
        rope_type = rope.get("rope_type", "default")
        if rope_type not in SUPPORTED_ROPE_TYPES:
            raise UserError(f"{arch} RoPE scaling '{rope_type}'{where} is not supported yet; supported rope_type: "
                            f"{', '.join(SUPPORTED_ROPE_TYPES)}")
        if rope.get("partial_rotary_factor", 1.0) != 1.0:
            raise UserError(f"{arch} partial_rotary_factor={rope['partial_rotary_factor']} (RoPE on part of each "
                            "head) is not supported yet; supported: 1.0 (RoPE on the whole head)")
    activation = activation_of(config)
    if activation not in SUPPORTED_ACTIVATIONS:
        raise UserError(f"{arch} hidden_act '{activation}' is not supported yet; supported: "
                        f"{', '.join(SUPPORTED_ACTIVATIONS)}")
    for softcap in ("attn_logit_softcapping", "final_logit_softcapping"):
        if getattr(config, softcap, None):
            raise UserError(f"{arch} {softcap}={getattr(config, softcap)} is not supported yet; supported: none")
    if getattr(config, "use_bidirectional_attention", False):
        raise UserError(f"{arch} use_bidirectional_attention is not supported; supported: causal attention")
    if getattr(config, "mlp_bias", False) or (arch != "qwen2" and getattr(config, "attention_bias", False)):
        raise UserError(f"{arch} with mlp_bias / attention_bias is not supported yet; supported: no MLP or output "
                        "projection bias (Qwen2's q/k/v bias is)")


def activation_of(config) -> str:
    """The gated MLP's activation: Gemma's configs name it hidden_activation, the others hidden_act."""
    return getattr(config, "hidden_activation", None) or getattr(config, "hidden_act", "silu")


def check_positions(config, n_virtual: int, max_context: int) -> None:
    """The soft prompt plus --max-context fit the model's positions, and no sliding window cuts into them (the
    graphs attend to every cached position)."""
    positions = n_virtual + max_context
    if positions > config.max_position_embeddings:
        raise UserError(f"--max-context {max_context} + {n_virtual} soft-prompt positions exceed the model's "
                        f"{config.max_position_embeddings}: pass --max-context "
                        f"{config.max_position_embeddings - n_virtual} or less")
    window = getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", True) else None
    if window and window < positions and config.model_type not in WINDOWED_ARCHITECTURES:
        raise UserError(f"{config.model_type} attends through a sliding window of {window} tokens, which is not "
                        f"supported yet: pass --max-context {window - n_virtual} or less, so the window never cuts in")
