"""The benchmark's comparison artifacts that `softfold export` does not make, one per process:

    python -m softfold.bench.exports [--model M] KIND OUT [--recipe fp32|8da4w] [--soft-prompt SP]

KIND: `naive` (no folding: token_embedding + text_decoder methods and the soft prompt's embeddings beside them,
for apps that prefill them at every request), `guard` (a randomly initialized model shaped like Llama-Guard-3-1B,
for the dual system's cost), `hf` (the base model as a Hugging Face directory, for the tools that want one).
softfold's own program with nothing added is `softfold export --base-only`.
"""
import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.export import Dim
from transformers import LlamaConfig, LlamaForCausalLM

from softfold.bundle.tokenizer_files import save_tokenizer
from softfold.export.config import EmbeddingQuant, LinearQuant
from softfold.export.executorch import export_pte, lower_to_xnnpack, runner_metadata
from softfold.export.fold import build_folded_model
from softfold.export.quantize import quantize_executorch
from softfold.inputs.base_model import bos_id, eos_ids, read_model
from softfold.inputs.named_models import default_model_path
from softfold.inputs.soft_prompt import load_soft_prompt

# Llama-Guard-3-1B's shape (Llama 3.2 1B): what matters for cost; the weights here are random
GUARD_CONFIG = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                    num_key_value_heads=8, head_dim=64, vocab_size=128256, max_position_embeddings=131072,
                    rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=True)


def _quantize(model, recipe: str) -> None:
    if recipe == "8da4w":
        quantize_executorch(model, LinearQuant(4, 32), EmbeddingQuant(8))


def export_guard(base, out: Path, recipe: str) -> None:
    """The guard as a plain program (torchao round-to-nearest for 8da4w): the dual system's cost, not its accuracy."""
    model = build_folded_model(base.model, None, 2048)
    _quantize(model, recipe)
    export_pte(model, runner_metadata(model, bos_id(base), eos_ids(base)), out / "model.pte")
    save_tokenizer(base.tokenizer, out)


class _TokenEmbedding(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.embed_tokens = model.embed_tokens

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(tokens)


class _TextDecoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, embeds: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        return self.model.forward_embeds(embeds, input_pos)


def export_naive(base, soft_prompt: Path, out: Path, recipe: str) -> None:
    """Two methods, as ExecuTorch's multimodal runners take them; the app prepends the soft prompt itself."""
    model = build_folded_model(base.model, None, 2048)
    _quantize(model, recipe)
    seq, dim = Dim("seq", min=1, max=2048), model.args.dim
    with torch.no_grad():
        programs = {
            "token_embedding": torch.export.export(_TokenEmbedding(model), (torch.zeros(1, 2, dtype=torch.long),),
                                                   dynamic_shapes=({1: seq},), strict=False),
            "text_decoder": torch.export.export(_TextDecoder(model), (torch.zeros(1, 2, dim), torch.tensor([0])),
                                                dynamic_shapes=({1: seq}, None), strict=False),
        }
    (out / "model.pte").write_bytes(lower_to_xnnpack(programs))
    embeddings = load_soft_prompt(soft_prompt, model.args.dim).embeddings.float().contiguous()
    save_file({"prompt_embeddings": embeddings}, out / "soft_prompt.safetensors")
    save_tokenizer(base.tokenizer, out)


def write_guard_model(tokenizer_source, out: Path) -> Path:
    """A Llama-Guard-3-1B-shaped model with random weights, as a Hugging Face directory."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**GUARD_CONFIG)).eval()
    model.save_pretrained(out)
    tokenizer_source.save_pretrained(out)  # the SmolLM tokenizer: its ids fit the guard's vocabulary
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m softfold.bench.exports")
    parser.add_argument("kind", choices=["naive", "guard", "hf"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--recipe", default="fp32", choices=["fp32", "8da4w"])
    parser.add_argument("--model")
    parser.add_argument("--soft-prompt", type=Path)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    base = read_model(args.model or default_model_path()).load()
    if args.kind == "hf":
        base.model.hf_quantizer = None  # GGUF weights are dequantized to fp32 at load: plain safetensors from here
        base.model.save_pretrained(args.out)
        base.tokenizer.save_pretrained(args.out)
        config = json.loads((args.out / "config.json").read_text())
        config.pop("quantization_config", None)  # null here still reads as "quantized" to some tools
        (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    elif args.kind == "naive":
        export_naive(base, args.soft_prompt, args.out, args.recipe)
    else:
        guard_dir = write_guard_model(base.tokenizer, args.out / "hf")
        export_guard(read_model(guard_dir).load(), args.out, args.recipe)
    print(json.dumps({"kind": args.kind, "out": str(args.out)}))


if __name__ == "__main__":
    main()
