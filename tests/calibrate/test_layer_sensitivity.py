"""The sensitivity report on a tiny model: simulated quantization arithmetic, ranking, restoring weights."""
import pytest
import torch

from softfold.calibrate.layer_sensitivity import sensitivity
from softfold.calibrate.prompts import calibration_set
from softfold.calibrate.simulate import quantized
from softfold.inputs.base_model import read_model
from softfold.inputs.soft_prompt import load_soft_prompt
from softfold.reference.reference import Reference


@pytest.fixture(scope="module")
def reference(tiny_models, soft_prompts):
    base = read_model(tiny_models["llama"]).load()
    with torch.no_grad():  # an outlier input channel in layers.1, harmless in fp32 (its input is always 0),
        block = base.model.model.layers[1]  # but 4-bit groups holding it round most other weights to 0,
        block.post_attention_layernorm.weight[0] = 0  # while 8 bits per channel still resolve them
        outlier = 50 * block.mlp.gate_proj.weight.std()
        block.mlp.gate_proj.weight[:, 0] = outlier
        block.mlp.up_proj.weight[:, 0] = outlier
    return Reference(base, load_soft_prompt(soft_prompts[("llama", 16)], 64))


def test_quantized_context_restores_weights_and_spares_the_tied_embedding(reference):
    model = reference.model.get_base_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with quantized(model, ("lm_head", "layers.0"), bits=4, group_size=32):
        assert not torch.equal(model.lm_head.weight, before["lm_head.weight"])
        assert torch.equal(model.model.embed_tokens.weight, before["model.embed_tokens.weight"])
        assert torch.equal(model.model.layers[1].mlp.up_proj.weight, before["model.layers.1.mlp.up_proj.weight"])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_the_damaged_layer_ranks_first_and_keeping_it_at_8_bits_helps(reference):
    harmful, benign = calibration_set(per_class=3)
    report = sensitivity(reference, harmful + benign, bits=4, group_size=32, new_tokens=8)
    assert [r.layer for r in report.layers][0] == "layers.1"
    assert sorted(r.layer for r in report.layers) == ["layers.0", "layers.1", "lm_head"]
    assert report.suggested_keep_8bit[0] == "layers.1"
    assert report.with_suggestion.mean_kl < report.all_quantized.mean_kl
    assert "--keep-8bit layers.1" in report.markdown()


def test_the_soft_prompts_kv_stay_fp32(reference):
    """As in a prefix-kv bundle: the model computes quantized, the soft prompt's K/V are the fp32 ones."""
    from softfold.reference.greedy import expand_cache, prefix_cache

    harmful, benign = calibration_set(per_class=2)
    report = sensitivity(reference, harmful + benign, bits=4, group_size=32, new_tokens=4)
    model = reference.model.get_base_model()
    ids = [reference.prompt_ids(p) for p in harmful + benign]
    kv = prefix_cache(model, reference.model.get_prompt(batch_size=1)[0])
    fp32 = [reference.greedy_with_first_logits(i, 1)[1] for i in ids]
    names = ("layers.0", "layers.1", "lm_head")
    with quantized(model, names, 4, 32):
        held = [reference.greedy_with_first_logits(i, 1, expand_cache(model, kv, 1))[1] for i in ids]
        recomputed = [reference.greedy_with_first_logits(i, 1)[1] for i in ids]  # a virtual-token bundle's

    def mean_kl(quant):
        return sum(torch.nn.functional.kl_div(q.log_softmax(-1), f.log_softmax(-1), log_target=True,
                                              reduction="sum").item() for f, q in zip(fp32, quant)) / len(ids)

    assert report.all_quantized.mean_kl == pytest.approx(mean_kl(held), rel=1e-4, abs=1e-6)
    assert abs(mean_kl(recomputed) - mean_kl(held)) > 1e-3
