"""Steering vectors in bundles, the paper's other baseline: llama.cpp control vectors, each direction.N added to the
output of block N by the reference's forward hooks and as a constant of both export graphs, and the bundles gated
against the HF model with the hooks through TextLLMRunner and onnxruntime-genai."""
import pytest
import torch
from conftest import MAX_CONTEXT, PROMPTS, cli_exports, eval_json, passed_fp32_gate
from executorch.runtime import Runtime
from peft import PeftModel
from tiny import make_control_vector, make_lora_dir, make_model_dir, make_soft_prompt_dir
from transformers import AutoModelForCausalLM, AutoTokenizer

from softfold.bundle.integrity import read_manifest
from softfold.cli.main import main
from softfold.engines.engine import bundle_engine
from softfold.export.fold import build_folded_model, build_virtual_token_model
from softfold.files import file_sha256
from softfold.inputs.base_model import read_model
from softfold.inputs.chat_template import chat_ids
from softfold.inputs.control_vector import decoder_layers, load_steering, steered
from softfold.inputs.soft_prompt import load_soft_prompt
from softfold.native_io import muted
from softfold.parity.gate import GateConfig, run_parity
from softfold.pipeline.options import ExportOptions
from softfold.pipeline.stages import export_bundle
from softfold.reference.reference import Reference


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    """A 3-block tiny llama: llama.cpp steers blocks 1 (a middle one) and 2 (the last)."""
    return make_model_dir(tmp_path_factory.mktemp("steering-model") / "llama3", "llama", n_layers=3)


@pytest.fixture(scope="module")
def vectors(deep, tmp_path_factory):
    """Random directions after blocks 1 and 2, about as long as the residual stream there (norm 32 vs 30-50)."""
    return make_control_vector(tmp_path_factory.mktemp("steering") / "control_vector.gguf", deep, (1, 2), seed=3,
                               scale=4.0)


@pytest.fixture(scope="module")
def steering_bundle(deep, vectors, tmp_path_factory):
    """steering_bundle(target) -> a bundle of the vectors alone, exported once through `softfold export
    --steering-vector`."""
    return cli_exports(tmp_path_factory.mktemp("steering-bundles"), "--model", str(deep), "--steering-vector",
                       str(vectors))


def _inputs_of(model, block: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = block.register_forward_pre_hook(lambda m, args, kwargs: seen.append(args[0] if args else
                                                                              kwargs["hidden_states"]),
                                             with_kwargs=True)
    with torch.no_grad():
        model(input_ids=ids)
    handle.remove()
    return seen[0]


def test_each_vector_is_added_to_its_blocks_output_at_every_position(deep, vectors):
    """llama.cpp's direction.N, after block N: what block N + 1 (or the final norm, after the last block) sees."""
    base = read_model(deep).load()
    steering = load_steering(vectors, base.config)
    assert steering.layers == [1, 2] and steering.model_hint == "llama"
    ids = torch.tensor([[5, 9, 17, 33, 2, 40]])
    model, blocks = base.model, decoder_layers(base.model)
    plain = _inputs_of(model, blocks[2], ids)
    with steered(model, {1: steering.vectors[1]}):
        moved = _inputs_of(model, blocks[2], ids)
    torch.testing.assert_close(moved - plain, steering.vectors[1].expand_as(plain), rtol=0, atol=1e-5)
    plain = _inputs_of(model, model.model.norm, ids)
    with steered(model, {2: steering.vectors[2]}):
        moved = _inputs_of(model, model.model.norm, ids)
    torch.testing.assert_close(moved - plain, steering.vectors[2].expand_as(plain), rtol=0, atol=1e-5)
    assert not any(block._forward_hooks for block in blocks)  # removed on leaving


def test_the_folded_graph_adds_the_vectors_as_the_hooks_do(deep, vectors, tmp_path):
    """Eager export model, every position: the vectors alone, and with a soft prompt (whose folded K/V are computed
    with the vectors added, as the reference computes the virtual tokens), folded as prefix K/V or virtual tokens."""
    base = read_model(deep).load()
    steering = load_steering(vectors, base.config)
    prompt_dir = make_soft_prompt_dir(tmp_path / "prompt", deep, 4, seed=2)
    ids = chat_ids(base.tokenizer, "Tell me a story about the sea.")
    for soft_prompt in (None, load_soft_prompt(prompt_dir, base.config.hidden_size)):
        reference = Reference(read_model(deep).load(), soft_prompt, steering=steering)
        embeds = reference.model.get_input_embeddings()(torch.tensor([ids]))
        with torch.no_grad():
            if soft_prompt is not None:
                embeds = torch.cat([reference.model.get_prompt(batch_size=1), embeds], 1)
            lm = reference.model.get_base_model() if soft_prompt is not None else reference.model
            want = lm(inputs_embeds=embeds).logits[0, reference.n_virtual:]
            prompt = reference.model.get_prompt(batch_size=1)[0] if soft_prompt is not None else None
            folded = build_folded_model(base.model, prompt, 64, steering.vectors)
            with muted():
                got = torch.cat([folded(torch.tensor([[t]]), torch.tensor([i])) for i, t in enumerate(ids)])
            unsteered = build_folded_model(base.model, prompt, 64)
            with muted():
                plain = torch.cat([unsteered(torch.tensor([[t]]), torch.tensor([i])) for i, t in enumerate(ids)])
        assert (got - want).abs().max() <= 1e-5 * want.abs().max()
        assert (plain - want).abs().max() > 0.2 * want.abs().max()  # and the vectors matter
    # virtual-token folding: the soft prompt's rows run through the steered blocks at request time
    start = base.config.vocab_size
    virtual = build_virtual_token_model(base.model, prompt, start, 64, steering.vectors)
    with torch.no_grad(), muted():
        tokens = list(range(start, start + 4)) + ids
        got = torch.cat([virtual(torch.tensor([[t]]), torch.tensor([i])) for i, t in enumerate(tokens)])[4:]
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()


@pytest.mark.integration
@pytest.mark.parametrize("target", ["executorch", "onnx"])
def test_a_steering_bundle_passes_its_gate_through_the_phone_engine(steering_bundle, vectors, target):
    bundle = steering_bundle(target)
    manifest = passed_fp32_gate(bundle)
    assert "soft_prompt" not in manifest and "adapter" not in manifest
    assert manifest["steering"] == {"format": "llama.cpp control vector (GGUF)", "source": str(vectors),
                                    "sha256": file_sha256(vectors), "layers": [1, 2], "model_hint": "llama"}
    assert "steering vectors (a llama.cpp control vector" in (bundle / "README.md").read_text()


@pytest.mark.integration
def test_the_gate_holds_the_bundle_to_its_steering_vectors(steering_bundle, deep, vectors, tmp_path, capsys):
    bundle = steering_bundle("onnx")
    capsys.readouterr()  # the fixture's export, when this test is the first to ask for the bundle
    assert main(["parity", str(bundle), "--model", str(deep), "--steering-vector", str(vectors),
                 "--report", str(tmp_path / "again")]) == 0
    assert capsys.readouterr().out.startswith("parity PASSED")
    other = make_control_vector(tmp_path / "other.gguf", deep, (1, 2), seed=4, scale=4.0)
    assert main(["parity", str(bundle), "--model", str(deep), "--steering-vector", str(other),
                 "--report", str(tmp_path / "other")]) == 1
    assert "is not the control vector this bundle folded (sha256 differs)" in capsys.readouterr().err
    # the same bundle against the base model alone, as if the vectors had not been folded: the gate fails
    without = run_parity(Reference(read_model(deep).load()), bundle_engine(bundle, read_manifest(bundle)), list(PROMPTS),
                         "fp32", MAX_CONTEXT, check_engine=False)
    assert not without.passed and without.metrics["top1"] < 0.5


@pytest.mark.integration
def test_steering_with_a_soft_prompt_and_a_lora(deep, vectors, tmp_path):
    """All three inputs in one .pte: the LoRA merged, the soft prompt's K/V folded from the merged and steered model,
    the vectors after their blocks; checked against PEFT (LoRA unmerged, the soft prompt's embeddings in front) with
    hooks adding the vectors, independent of softfold's Reference, at every user position."""
    prompt_dir = make_soft_prompt_dir(tmp_path / "prompt", deep, 8, seed=5)
    lora = make_lora_dir(tmp_path / "lora", deep, seed=1)
    out = tmp_path / "all"
    report = export_bundle(ExportOptions(model=deep, soft_prompt=prompt_dir, adapter=lora, steering_vector=vectors,
                                         out=out, max_context=MAX_CONTEXT, gate=GateConfig(PROMPTS)))
    assert report.passed, report.failures
    assert report.metrics["engine_match"] == 1.0 and report.metrics["rel_dlogit"] <= 1e-4
    manifest = read_manifest(out)
    assert (manifest["soft_prompt"]["num_virtual_tokens"], manifest["adapter"]["rank"],
            manifest["steering"]["layers"]) == (8, 4, [1, 2])
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(deep), lora).eval()
    prompt = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(deep), prompt_dir)
    ids = chat_ids(AutoTokenizer.from_pretrained(deep), "List three prime numbers.")
    blocks = peft.get_base_model().model.layers
    handles = [blocks[n].register_forward_hook(lambda m, a, o, v=v: o + v)
               for n, v in load_steering(vectors, peft.config).vectors.items()]
    with torch.no_grad():
        embeds = torch.cat([prompt.get_prompt(batch_size=1), peft.get_input_embeddings()(torch.tensor([ids]))], 1)
        want = peft(inputs_embeds=embeds).logits[0, 8:]
    for handle in handles:
        handle.remove()
    method = Runtime.get().load_program(str(out / "model.pte")).load_method("forward")
    got = torch.stack([method.execute([torch.tensor([[t]]), torch.tensor([i])])[0][0] for i, t in enumerate(ids)])
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()


def test_eval_measures_the_steered_student(deep, vectors, tmp_path, capsys):
    """`softfold eval --steering-vector`: the student's replies are the hooked HF model's own greedy generation,
    and differ from the base model's."""
    results = eval_json(deep, ["--steering-vector", str(vectors), "--no-base"], tmp_path, capsys)
    assert set(results) == {"steering"}
    tokenizer = AutoTokenizer.from_pretrained(deep)
    model = AutoModelForCausalLM.from_pretrained(deep).eval()
    plain, steered_replies = [], []
    for prompt in PROMPTS[1:]:
        ids = torch.tensor([chat_ids(tokenizer, prompt)])
        plain.append(model.generate(input_ids=ids, max_new_tokens=6, do_sample=False)[0, ids.shape[1]:].tolist())
        with steered(model, load_steering(vectors, model.config).vectors):
            new = model.generate(input_ids=ids, max_new_tokens=6, do_sample=False)[0, ids.shape[1]:].tolist()
        steered_replies.append(new)
    decode = lambda toks: tokenizer.decode([t for t in toks if t != tokenizer.eos_token_id])  # noqa: E731
    assert results["steering"]["good"]["replies"] == [decode(t) for t in steered_replies]
    assert steered_replies != plain
