"""ORT GenAI's model builder for the benchmark, with one shim for transformers 5's Gemma 3 configs:

    python -m softfold.bench.builder BUILDER_ARGS...   (as `python -m onnxruntime_genai.models.builder`)

transformers 5 nests Gemma 3's RoPE settings per attention type (`rope_parameters = {"full_attention": {...},
"sliding_attention": {...}}`), while onnxruntime-genai 0.18's builder reads them flat (`rope_parameters["rope_type"]`,
`rope_theta`, `rope_local_base_freq`) and stops with KeyError 'rope_type'. The shim gives the loaded config those
flat attributes, from the same two entries, before the builder reads it: the model it builds is the one the config
describes. Configs without the nesting pass through untouched.
"""
import runpy
import sys

from transformers import AutoConfig

BUILDER = "onnxruntime_genai.models.builder"


def flat_rope(config):
    """`config` with Gemma 3's per-attention-type RoPE settings also stated flat, the way 0.18's builder reads them."""
    nested = getattr(config, "rope_parameters", None)
    if isinstance(nested, dict) and {"full_attention", "sliding_attention"} <= set(nested):
        config.rope_theta = nested["full_attention"]["rope_theta"]
        config.rope_local_base_freq = nested["sliding_attention"]["rope_theta"]
        config.rope_parameters = dict(nested["full_attention"])
    return config


def main() -> None:
    load = AutoConfig.from_pretrained

    def from_pretrained(*args, **kwargs):
        return flat_rope(load(*args, **kwargs))

    AutoConfig.from_pretrained = from_pretrained
    sys.argv = [BUILDER, *sys.argv[1:]]
    runpy.run_module(BUILDER, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
