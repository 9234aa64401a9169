"""Virtual-token folding (docs/folding.md): the soft prompt as N special tokens, through the real runtimes."""
import json

import numpy as np
import onnx
import pytest
import torch
from conftest import MAX_CONTEXT, PROMPTS, chat, peft_reference, runner_greedy
from executorch.extension.llm.runner import TextLLMRunner
from onnx import numpy_helper
from safetensors.torch import load_file
from transformers import AutoTokenizer

from softfold.bundle.integrity import verify
from softfold.bundle.virtual_tokens import TOKEN
from softfold.engines.engine import OnnxEngine
from softfold.export.config import Folding, QuantConfig, Recipe, Target
from softfold.parity.gate import GateConfig
from softfold.pipeline.options import ExportOptions
from softfold.pipeline.stages import export_bundle

N = 16


@pytest.fixture(scope="module")
def virtual_bundle(tiny_models, soft_prompts, tmp_path_factory):
    """virtual_bundle(target, recipe=fp32, **options) -> bundle dir; its parity gate must pass."""
    root, cache = tmp_path_factory.mktemp("virtual"), {}

    def export(target: str, recipe: str = "fp32", **options) -> tuple:
        key = (target, recipe, *sorted(options.items()))
        if key not in cache:
            out = root / "-".join(map(str, key))
            report = export_bundle(ExportOptions(
                model=tiny_models["llama"], soft_prompt=soft_prompts[("llama", N)], out=out,
                quant=QuantConfig(Target(target), Recipe(recipe), **options), folding=Folding.VIRTUAL_TOKENS,
                max_context=MAX_CONTEXT, gate=GateConfig(PROMPTS)))
            cache[key] = out, report
        return cache[key]

    return export


def peft_greedy(ref, tok, prompt: str, n: int, skip_special_tokens: bool = False) -> str:
    ids = torch.tensor([tok(chat(tok, prompt), add_special_tokens=False)["input_ids"]])
    out = ref.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                       use_cache=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=skip_special_tokens).removesuffix("<|im_end|>")


def test_pte_bundle_tokenizer_and_manifest(virtual_bundle, tiny_models):
    bundle, report = virtual_bundle("executorch")
    assert report.passed, report.failures
    assert report.metrics["rel_dlogit"] <= 1e-4 and report.metrics["top1"] == 1.0
    manifest = json.loads((bundle / "manifest.json").read_text())
    sp, base_vocab = manifest["soft_prompt"], len(AutoTokenizer.from_pretrained(tiny_models["llama"]))
    assert sp["folding"] == "virtual-tokens" and sp["virtual_token_ids"] == list(range(base_vocab, base_vocab + N))
    assert manifest["model"]["context_length"] == MAX_CONTEXT + N
    virtual_text = "".join(TOKEN.format(i) for i in range(N))
    assert manifest["prompt_format"]["preamble"].startswith(virtual_text)
    tok = AutoTokenizer.from_pretrained(bundle)
    text = chat(tok, "Hello")
    assert text.startswith(virtual_text)
    assert tok(text, add_special_tokens=False)["input_ids"][:N] == sp["virtual_token_ids"]
    assert verify(bundle) == []


def test_text_llm_runner_with_bundle_template_equals_peft(virtual_bundle, tiny_models, soft_prompts):
    """The app's path: the bundle's own chat template (virtual tokens included) -> TextLLMRunner."""
    bundle, _ = virtual_bundle("executorch")
    ref, base_tok = peft_reference(tiny_models["llama"], soft_prompts[("llama", N)])
    bundle_tok = AutoTokenizer.from_pretrained(bundle)
    runner = TextLLMRunner(str(bundle / "model.pte"), str(bundle / "tokenizer.json"))
    for prompt in PROMPTS + ("Explain photosynthesis in simple words.",):
        got = runner_greedy(runner, chat(bundle_tok, prompt), 32)
        runner.reset()
        assert got == peft_greedy(ref, base_tok, prompt, 32)


def test_onnx_genai_with_bundle_template_equals_peft(virtual_bundle, tiny_models, soft_prompts):
    import onnxruntime_genai as og

    bundle, report = virtual_bundle("onnx")
    assert report.passed, report.failures
    ref, base_tok = peft_reference(tiny_models["llama"], soft_prompts[("llama", N)])
    bundle_tok = AutoTokenizer.from_pretrained(bundle)
    engine = OnnxEngine(bundle, "model.onnx")  # greedy through onnxruntime-genai, its own tokenizer
    tokenizer = og.Tokenizer(og.Model(str(bundle)))
    for prompt in PROMPTS:
        ids = tokenizer.encode(chat(bundle_tok, prompt))
        assert list(ids[:N]) == list(range(len(base_tok), len(base_tok) + N))
        new = engine.greedy(chat(bundle_tok, prompt), 24)
        assert base_tok.decode(new).removesuffix("<|im_end|>") == peft_greedy(ref, base_tok, prompt, 24)


def test_quantized_onnx_keeps_soft_prompt_rows_fp32(virtual_bundle, soft_prompts):
    bundle, report = virtual_bundle("onnx", "int4", embedding_bits=4)
    assert "refusal_agreement" in report.metrics
    graph = onnx.load(str(bundle / "model.onnx")).graph
    soft = load_file(soft_prompts[("llama", N)] / "adapter_model.safetensors")["prompt_embeddings"].numpy()
    tables = [numpy_helper.to_array(i, base_dir=str(bundle)) for i in graph.initializer if list(i.dims) == list(soft.shape)]
    assert [t.dtype for t in tables] == [np.float32] and np.array_equal(tables[0], soft)  # the rows, exactly
    assert any(n.op_type == "GatherBlockQuantized" for n in graph.node)  # the vocabulary table is 4-bit
    # the bundle computes the soft prompt's positions with the 4-bit weights: GPTQ does not pay there (docs/lab/runs.md)
    scheme = json.loads((bundle / "manifest.json").read_text())["quantization"]["OnnxBlockQuant"]
    assert scheme["algorithm"] == "rtn"


def test_quantizing_leaves_the_soft_prompt_rows_alone(tiny_models, soft_prompts):
    from transformers import AutoModelForCausalLM

    from softfold.export.config import EmbeddingQuant, LinearQuant
    from softfold.export.fold import build_virtual_token_model
    from softfold.export.quantize import quantize_executorch

    hf = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32)
    soft = load_file(soft_prompts[("llama", N)] / "adapter_model.safetensors")["prompt_embeddings"]
    model = build_virtual_token_model(hf, soft, hf.config.vocab_size, MAX_CONTEXT)
    quantize_executorch(model, LinearQuant(4, 32), EmbeddingQuant(8))
    assert type(model.virtual_embeddings) is torch.Tensor and torch.equal(model.virtual_embeddings, soft)
    assert type(model.embed_tokens.weight) is not torch.nn.Parameter or model.embed_tokens.weight.dtype != torch.float32
