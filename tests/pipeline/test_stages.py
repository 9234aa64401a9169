"""Exported bundles against the PEFT reference, through the real runtimes."""
import json

import pytest
import torch
from conftest import MAX_CONTEXT, NEW_ARCHS, PROMPTS, chat, peft_reference, runner_greedy
from executorch.extension.llm.runner import TextLLMRunner
from executorch.runtime import Runtime
from transformers import AutoModelForCausalLM, AutoTokenizer

from softfold.bundle.integrity import verify
from softfold.cli.main import main
from softfold.engines.engine import ExecuTorchEngine
from softfold.engines.text_runner import cut_at_stop
from softfold.inputs.soft_prompt import load_soft_prompt
from softfold.parity.gate import GateConfig
from softfold.pipeline.options import ExportOptions
from softfold.pipeline.stages import export_bundle

CASES = [(arch, n) for arch in ("llama", "qwen2") for n in (1, 16)]
ARCH_CASES = CASES + [(arch, 16) for arch in NEW_ARCHS]


@pytest.mark.parametrize("arch,n", ARCH_CASES)
def test_pte_logits_match_peft_at_every_user_position(export_tiny, tiny_models, soft_prompts, arch, n):
    ref, tok = peft_reference(tiny_models[arch], soft_prompts[(arch, n)])
    method = Runtime.get().load_program(str(export_tiny(arch, n) / "model.pte")).load_method("forward")
    ids = tok(chat(tok, "List three prime numbers and explain them."), add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        want = ref(input_ids=torch.tensor([ids])).logits[0, n:]
    got = torch.stack([method.execute([torch.tensor([[t]]), torch.tensor([i])])[0][0] for i, t in enumerate(ids)])
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()
    assert torch.equal(got.argmax(-1), want.argmax(-1))


@pytest.mark.parametrize("arch,n", ARCH_CASES)
def test_text_llm_runner_greedy_equals_peft_and_survives_reset(export_tiny, tiny_models, soft_prompts, arch, n):
    ref, tok = peft_reference(tiny_models[arch], soft_prompts[(arch, n)])
    bundle = export_tiny(arch, n)
    runner = TextLLMRunner(str(bundle / "model.pte"), str(bundle / "tokenizer.json"))
    eos = tok.eos_token_id
    for prompt in PROMPTS + ("Explain photosynthesis in simple words.",):
        ids = torch.tensor([tok(chat(tok, prompt), add_special_tokens=False)["input_ids"]])
        out = ref.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=32, do_sample=False,
                           use_cache=False, eos_token_id=eos, pad_token_id=eos)
        want = tok.decode(out[0, ids.shape[1]:]).removesuffix("<|im_end|>")
        first = runner_greedy(runner, chat(tok, prompt), 32)
        runner.reset()
        again = runner_greedy(runner, chat(tok, prompt), 32)
        runner.reset()
        assert first == want
        assert again == first


def test_manifest_and_reports(bundles, soft_prompts):
    bundle = bundles[("llama", 16)]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["backend"] == "executorch" and manifest["recipe"] == "fp32"
    assert manifest["soft_prompt"]["num_virtual_tokens"] == 16 and manifest["soft_prompt"]["folding"] == "prefix-kv"
    assert manifest["model"]["context_length"] == MAX_CONTEXT
    assert {f["path"] for f in manifest["files"]} >= {"model.pte", "tokenizer.json", "parity.json", "parity.md",
                                                      "README.md", "tokenizer_config.json"}
    parity = json.loads((bundle / "parity.json").read_text())
    assert parity["passed"] and parity["metrics"]["top1"] == 1.0 and parity["metrics"]["engine_match"] == 1.0
    assert parity["metrics"]["rel_dlogit"] <= 1e-4
    assert verify(bundle) == []


def test_perturbed_soft_prompt_fails_the_gate(tiny_models, soft_prompts, tmp_path):
    """Export with one soft prompt, check parity against another: the gate must catch it."""
    from tiny import make_soft_prompt_dir

    from softfold.inputs.base_model import read_model
    from softfold.parity.gate import run_parity
    from softfold.reference.reference import Reference

    perturbed = make_soft_prompt_dir(tmp_path / "perturbed", tiny_models["llama"], 16, seed=16, scale=1.05)
    out = tmp_path / "bundle"
    report = export_bundle(ExportOptions(model=tiny_models["llama"], soft_prompt=perturbed, out=out,
                                         max_context=MAX_CONTEXT, gate=GateConfig(PROMPTS[:1])))
    assert report.passed  # the bundle matches the prompt it was exported from...
    reference = Reference(read_model(tiny_models["llama"]).load(), load_soft_prompt(soft_prompts[("llama", 16)], 64))
    against_original = run_parity(reference, ExecuTorchEngine(out), list(PROMPTS), "fp32", MAX_CONTEXT)
    assert not against_original.passed  # ...and not the original one
    assert any(f.startswith("rel_dlogit") for f in against_original.failures)


def test_two_exports_are_byte_identical(tiny_models, soft_prompts, tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        export_bundle(ExportOptions(model=tiny_models["qwen2"], soft_prompt=soft_prompts[("qwen2", 1)], out=out,
                                    max_context=MAX_CONTEXT, gate=GateConfig(PROMPTS[:2])))
    files = sorted(p.name for p in outs[0].iterdir())
    assert files == sorted(p.name for p in outs[1].iterdir())
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_base_only_exports_the_model_alone(tiny_models, tmp_path):
    """`--base-only`: nothing added, the gate held to the base model; TextLLMRunner replies as transformers does."""
    out = tmp_path / "base"
    assert main(["export", "--model", str(tiny_models["llama"]), "--base-only", "--out", str(out),
                 "--max-context", str(MAX_CONTEXT)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert not {"soft_prompt", "adapter", "steering"} & set(manifest)
    readme = (out / "README.md").read_text()
    assert "Not a safety model" in readme and "Base model in fp32" in readme and "- safety" not in readme
    assert json.loads((out / "parity.json").read_text())["metrics"]["top1"] == 1.0 and verify(out) == []
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_models["llama"])
    ids = tok(chat(tok, PROMPTS[0]), return_tensors="pt", add_special_tokens=False).input_ids
    reply = model.generate(ids, max_new_tokens=16, do_sample=False)[0, ids.shape[1]:]
    want = cut_at_stop(tok.decode(reply), ["<|im_end|>"])
    runner = TextLLMRunner(str(out / "model.pte"), str(out / "tokenizer.json"))
    assert runner_greedy(runner, chat(tok, PROMPTS[0]), 16) == want


WORLD_PROMPTS = ("北京是", "Café crème brûlée", "🙂 🚀 emoji", "Привет, как дела?", PROMPTS[0])


@pytest.mark.integration
@pytest.mark.parametrize("target", ["executorch", "onnx"])
def test_replies_in_other_scripts_pass_the_gate_when_the_tokens_match(tmp_path, target):
    """A tokenizer with every byte and merges of CJK, emoji and accented text: a random model's replies hold such
    characters, control bytes and characters split across tokens, which TextLLMRunner prints differently from a
    decode of the whole reply (it drops lone bytes). The gate compares the two on equal terms: tokens that match
    exactly pass, through either engine."""
    from tiny import make_model_dir, make_soft_prompt_dir

    from softfold.export.config import QuantConfig, Target

    model = make_model_dir(tmp_path / "world", all_bytes=True)
    prompt = make_soft_prompt_dir(tmp_path / "prompt", model, 4)
    report = export_bundle(ExportOptions(model=model, soft_prompt=prompt, out=tmp_path / target,
                                         quant=QuantConfig(Target(target)), max_context=MAX_CONTEXT,
                                         gate=GateConfig(WORLD_PROMPTS)))
    assert report.passed, report.failures
    assert report.metrics["exact_match"] == report.metrics["engine_match"] == 1.0
    replies = "".join(r.reference_text for r in report.prompts)
    assert any(ord(c) > 0x7F and c != "\ufffd" for c in replies)  # the replies are not ASCII only
    if target == "executorch":  # the runner shows some replies otherwise than a decode of the whole reply
        assert any(r.engine_text != r.reference_text for r in report.prompts)
