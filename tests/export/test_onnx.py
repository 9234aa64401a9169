"""ONNX and ORT bundles against the PEFT reference, through onnxruntime and onnxruntime-genai (issue 3)."""
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import onnxruntime_genai as og
import pytest
import torch
from conftest import NEW_ARCHS, run_session
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

import softfold.export
from softfold.bundle.integrity import verify

CASES = [(arch, n) for arch in ("llama", "qwen2") for n in (1, 16)]
ARCH_CASES = CASES + [(arch, 16) for arch in NEW_ARCHS]
PROMPTS = ("Tell me a story about the sea.", "What is the capital of France?", "Explain photosynthesis in simple words.")


def reference(tiny_models, soft_prompts, arch, n):
    base = AutoModelForCausalLM.from_pretrained(tiny_models[arch], dtype=torch.float32)
    return PeftModel.from_pretrained(base, soft_prompts[(arch, n)]).eval(), AutoTokenizer.from_pretrained(tiny_models[arch])


def chat_ids(tok, prompt: str) -> list[int]:
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
    return tok(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("arch,n", ARCH_CASES)
def test_onnx_logits_match_peft_at_every_user_position(export_tiny, tiny_models, soft_prompts, arch, n):
    bundle = export_tiny(arch, n, "onnx")
    ref, tok = reference(tiny_models, soft_prompts, arch, n)
    ids = chat_ids(tok, "List three prime numbers and explain them.")
    with torch.no_grad():
        want = ref(input_ids=torch.tensor([ids])).logits[0, n:].numpy()
    got = run_session(ort.InferenceSession(str(bundle / "model.onnx")), ids, split=7)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    assert (got.argmax(-1) == want.argmax(-1)).all()


@pytest.mark.parametrize("arch,n", ARCH_CASES)
def test_onnxruntime_genai_greedy_equals_peft(export_tiny, tiny_models, soft_prompts, arch, n):
    bundle = export_tiny(arch, n, "onnx")
    ref, tok = reference(tiny_models, soft_prompts, arch, n)
    model = og.Model(str(bundle))
    for prompt in PROMPTS:
        ids = chat_ids(tok, prompt)
        x = torch.tensor([ids])
        want = ref.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=32, do_sample=False,
                            use_cache=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=len(ids) + 32)
        generator = og.Generator(model, params)
        generator.append_tokens(ids)
        got = []
        while not generator.is_done():
            generator.generate_next_token()
            got.append(int(generator.get_next_tokens()[0]))
        assert got == want[0, len(ids):].tolist()


@pytest.mark.parametrize("arch,n", CASES)
def test_ort_format_matches_its_onnx(export_tiny, tiny_models, arch, n):
    onnx_bundle, ort_bundle = export_tiny(arch, n, "onnx"), export_tiny(arch, n, "ort")
    tok = AutoTokenizer.from_pretrained(tiny_models[arch])
    ids = chat_ids(tok, "Write a poem about the moon.")
    from_onnx = run_session(ort.InferenceSession(str(onnx_bundle / "model.onnx")), ids, split=5)
    from_ort = run_session(ort.InferenceSession(str(ort_bundle / "model.ort")), ids, split=5)
    # Same graph; the .ort has ORT's EXTENDED fusions baked in, which may reorder float sums.
    assert np.abs(from_ort - from_onnx).max() <= 1e-5 * np.abs(from_onnx).max()
    assert (from_ort.argmax(-1) == from_onnx.argmax(-1)).all()
    operators = (ort_bundle / "required_operators.config").read_text()  # for a minimal ORT build
    assert "ai.onnx;" in operators and "MatMul" in operators


def test_onnx_bundle_contents(export_tiny):
    bundle = export_tiny("qwen2", 16, "onnx")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["backend"] == "onnx" and manifest["model"]["file"] == "model.onnx"
    assert {"model.onnx", "model.onnx.data", "genai_config.json", "tokenizer.json"} <= {f["path"] for f in manifest["files"]}
    genai = json.loads((bundle / "genai_config.json").read_text())
    assert genai["model"]["decoder"]["num_key_value_heads"] == 2 and genai["model"]["type"] == "qwen2"
    assert json.loads((bundle / "parity.json").read_text())["metrics"]["engine_match"] == 1.0
    assert verify(bundle) == []


def test_two_onnx_exports_are_byte_identical(tiny_models, soft_prompts, tmp_path):
    from softfold.export.config import QuantConfig, Target
    from softfold.parity.gate import GateConfig
    from softfold.pipeline.options import ExportOptions
    from softfold.pipeline.stages import export_bundle

    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        export_bundle(ExportOptions(model=tiny_models["llama"], soft_prompt=soft_prompts[("llama", 1)], out=out,
                                    quant=QuantConfig(Target.ONNX), max_context=64, gate=GateConfig(PROMPTS[:1])))
    for path in sorted(outs[0].iterdir()):
        assert path.read_bytes() == (outs[1] / path.name).read_bytes(), path.name
    # nor do they depend on where softfold is checked out: no exporter source paths in the graph
    graph = onnx.load(str(outs[0] / "model.onnx"), load_external_data=False).graph
    assert "pkg.torch.onnx.stack_trace" not in {p.key for node in graph.node for p in node.metadata_props}
    assert str(Path(softfold.export.__file__).parent) not in (outs[0] / "model.onnx").read_bytes().decode("latin-1")
