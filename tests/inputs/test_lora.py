"""PEFT LoRA adapters in bundles, the paper's baseline: merged exactly into a copy of the weights, and the bundles
gated against PEFT with the LoRA unmerged (and the soft prompt in front) through TextLLMRunner and onnxruntime-genai."""
import pytest
import torch
from conftest import MAX_CONTEXT, PROMPTS, cli_exports, eval_json, passed_fp32_gate
from executorch.runtime import Runtime
from peft import PeftModel
from tiny import make_lora_dir
from transformers import AutoModelForCausalLM, AutoTokenizer

from softfold.bundle.integrity import read_manifest
from softfold.cli.main import main
from softfold.engines.engine import bundle_engine
from softfold.files import file_sha256
from softfold.inputs.base_model import read_model
from softfold.inputs.chat_template import chat_ids
from softfold.inputs.lora import CONFIG_FILE, WEIGHTS_FILE, load_lora, merged, with_lora
from softfold.parity.gate import GateConfig, run_parity
from softfold.pipeline.options import ExportOptions
from softfold.pipeline.stages import export_bundle
from softfold.reference.reference import Reference


@pytest.fixture(scope="module")
def lora(tiny_models, tmp_path_factory):
    """Random A and B (non-zero) on every projection of the tiny llama."""
    return make_lora_dir(tmp_path_factory.mktemp("lora") / "llama", tiny_models["llama"], seed=1)


@pytest.fixture(scope="module")
def lora_bundle(tiny_models, lora, tmp_path_factory):
    """lora_bundle(target) -> a bundle of the LoRA alone, exported once through `softfold export --adapter`."""
    return cli_exports(tmp_path_factory.mktemp("lora-bundles"), "--model", str(tiny_models["llama"]), "--adapter",
                       str(lora))


def test_merged_weights_compute_what_peft_computes_unmerged(tiny_models, lora):
    base = read_model(tiny_models["llama"]).load()
    adapter = load_lora(lora, base.config)
    assert (adapter.rank, adapter.alpha, len(adapter.modules)) == (4, 8.0, 2 * 7)
    ids = torch.tensor([[5, 9, 17, 33, 2, 40]])
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_models["llama"]), lora).eval()
    with torch.no_grad():
        plain = base.model(input_ids=ids).logits
        folded_weights = merged(base, adapter).model(input_ids=ids).logits
        assert torch.equal(base.model(input_ids=ids).logits, plain)  # the merge went into a copy
        unmerged = with_lora(base.model, adapter)(input_ids=ids).logits
        want = peft(input_ids=ids).logits
    torch.testing.assert_close(unmerged, want, rtol=0, atol=0)  # the reference's model is PEFT's
    assert (folded_weights - want).abs().max() <= 1e-5 * want.abs().max()  # W + alpha / r B A, to fp32 rounding
    assert (want - plain).abs().max() > 0.1 * plain.abs().max()  # and the LoRA matters


@pytest.mark.parametrize("target", ["executorch", "onnx"])
def test_a_merged_lora_passes_its_gate_through_the_phone_engine(lora_bundle, lora, target):
    bundle = lora_bundle(target)
    manifest = passed_fp32_gate(bundle)
    assert "soft_prompt" not in manifest
    adapter = manifest["adapter"]
    assert (adapter["peft_type"], adapter["rank"], adapter["alpha"], adapter["source"]) == ("LORA", 4, 8.0, str(lora))
    assert len(adapter["target_modules"]) == 2 * 7
    assert {f["path"]: f["sha256"] for f in adapter["files"]} == {n: file_sha256(lora / n) for n in (CONFIG_FILE,
                                                                                                      WEIGHTS_FILE)}
    assert "LoRA adapter (rank 4, alpha 8, on down_proj, gate_proj" in (bundle / "README.md").read_text()


def test_the_gate_holds_the_bundle_to_the_lora_it_merged(lora_bundle, tiny_models, lora, tmp_path, capsys):
    bundle = lora_bundle("onnx")
    assert main(["parity", str(bundle), "--model", str(tiny_models["llama"]), "--adapter", str(lora),
                 "--report", str(tmp_path / "again")]) == 0
    assert capsys.readouterr().out.startswith("parity PASSED")
    # the same bundle against the base model alone, as if the merge had been skipped: the gate fails
    manifest = read_manifest(bundle)
    without = run_parity(Reference(read_model(tiny_models["llama"]).load()), bundle_engine(bundle, manifest), list(PROMPTS),
                         "fp32", MAX_CONTEXT, check_engine=False)
    assert not without.passed and without.metrics["top1"] < 0.5


def test_a_lora_and_a_soft_prompt_together(tiny_models, soft_prompts, lora, tmp_path):
    """The soft prompt's K/V folded from the merged weights; reference: PEFT's LoRA unmerged, the soft prompt's
    embeddings in front of the input's."""
    out, prompt_dir = tmp_path / "both", soft_prompts[("llama", 16)]
    report = export_bundle(ExportOptions(model=tiny_models["llama"], soft_prompt=prompt_dir, adapter=lora, out=out,
                                         max_context=MAX_CONTEXT, gate=GateConfig(PROMPTS)))
    assert report.passed, report.failures
    assert report.metrics["engine_match"] == 1.0 and report.metrics["rel_dlogit"] <= 1e-4
    manifest = read_manifest(out)
    assert manifest["soft_prompt"]["num_virtual_tokens"] == 16 and manifest["adapter"]["rank"] == 4
    # the .pte against PEFT directly, independent of softfold's Reference: every user position
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_models["llama"]), lora).eval()
    prompt = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_models["llama"]), prompt_dir)
    ids = chat_ids(AutoTokenizer.from_pretrained(tiny_models["llama"]), "List three prime numbers.")
    with torch.no_grad():
        embeds = torch.cat([prompt.get_prompt(batch_size=1), peft.get_input_embeddings()(torch.tensor([ids]))], 1)
        want = peft(inputs_embeds=embeds).logits[0, 16:]
    method = Runtime.get().load_program(str(out / "model.pte")).load_method("forward")
    got = torch.stack([method.execute([torch.tensor([[t]]), torch.tensor([i])])[0][0] for i, t in enumerate(ids)])
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()


def test_eval_measures_the_lora_student_as_peft_generates(tiny_models, lora, tmp_path, capsys):
    """`softfold eval --adapter`: the student's replies are PEFT's own greedy generation with the LoRA (KV cache on:
    only prompt tuning has the cache bug), and differ from the base model's."""
    results = eval_json(tiny_models["llama"], ["--adapter", str(lora)], tmp_path, capsys)
    assert set(results) == {"base", "lora"}
    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama"])
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_models["llama"]), lora).eval()
    want = []
    for prompt in PROMPTS[1:]:
        ids = torch.tensor([chat_ids(tokenizer, prompt)])
        new = peft.generate(input_ids=ids, max_new_tokens=6, do_sample=False)[0, ids.shape[1]:].tolist()
        want.append(tokenizer.decode([t for t in new if t != tokenizer.eos_token_id]))
    assert results["lora"]["good"]["replies"] == want
    assert results["lora"]["good"]["replies"] != results["base"]["good"]["replies"]
