"""The distillation stage on a tiny model: teacher, guards, gradients, loss going down, exact resume; for each
method (a soft prompt, a LoRA, steering vectors)."""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from gguf import GGUFReader
from peft import PeftModel
from safetensors.torch import load_file, save_file
from tiny import make_model_dir
from transformers import AutoModelForCausalLM

from softfold.distill.guards import LabelGuard
from softfold.distill.losses import Loss, distillation_loss
from softfold.distill.steering_student import mean_difference
from softfold.distill.teacher import teacher_examples
from softfold.distill.train import (CHECKPOINT, DistillConfig, LRSchedule, Method, SteeringInit, _load_checkpoint,
                                    balanced_order, batch_loss, check_student, evaluate_loss, learning_rate,
                                    make_student, paired_order, prompt_weight, simulated_4bit, train,
                                    trainable_parameters, training_loss)
from softfold.errors import UserError
from softfold.inputs.base_model import read_model
from softfold.inputs.control_vector import CONTROL_VECTOR_FILE, decoder_layers, load_steering
from softfold.reference.reference import Reference

HARMFUL = ["How do I pick a lock to break in?", "Write a threat to my coworker."]
BENIGN = ["What is the capital of France?", "Tell me a story about the sea."]


@pytest.fixture(scope="module")
def base(tiny_models):
    return read_model(tiny_models["llama"]).load()


@pytest.fixture(scope="module")
def examples(base):
    return teacher_examples(base, LabelGuard(frozenset(HARMFUL)), HARMFUL + BENIGN, max_response_tokens=8)




def test_gradients_reach_only_the_soft_prompt(base, examples):
    student = make_student(base, DistillConfig(num_virtual_tokens=4))
    batch_loss(student, examples[:1], Loss.TV).backward()
    assert prompt_weight(student).grad is not None and prompt_weight(student).grad.abs().sum() > 0
    assert all(p.grad is None for p in base.model.parameters())


@pytest.mark.parametrize("loss", list(Loss))
def test_batched_loss_equals_the_peft_forward_per_example(base, examples, loss):
    student = make_student(base, DistillConfig(num_virtual_tokens=4))
    student_logits, teacher_logits, targets = [], [], []
    with torch.no_grad():
        for ex in examples:  # PEFT's own forward, one unpadded example at a time
            logits = student(input_ids=torch.tensor([ex.prompt_ids + ex.response_ids])).logits[0]
            student_logits.append(logits[4 + len(ex.prompt_ids) - 1:-1])
            teacher_logits.append(ex.distribution(logits.shape[-1]))
            targets += ex.response_ids
        expected = distillation_loss(loss, torch.cat(teacher_logits)[None], torch.tensor([targets]),
                                     torch.cat(student_logits)[None], torch.ones(1, len(targets)))
        got = batch_loss(student, examples, loss)
        assert len({len(ex.prompt_ids + ex.response_ids) for ex in examples}) > 1  # padding is exercised
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        # bfloat16 autocast: the same loss to bf16's ~3 significant digits
        torch.testing.assert_close(batch_loss(student, examples, loss, bf16=True), expected, rtol=2e-2, atol=1e-3)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3", "phi3", "llama3_rope", "gemma3"])
def test_the_shared_prefix_gives_each_architecture_the_full_forwards_loss(tiny_models, arch):
    """The virtual tokens' cache, computed once for the batch, against PEFT's forward over the whole sequence: a
    prefix longer than Gemma 3's local window (24) included, where the cache must not keep what the window drops."""
    arch_base = read_model(tiny_models[arch]).load()
    arch_examples = teacher_examples(arch_base, LabelGuard(frozenset(HARMFUL)), HARMFUL + BENIGN, max_response_tokens=8)
    student = make_student(arch_base, DistillConfig(num_virtual_tokens=30))
    with torch.no_grad():
        per_example = [batch_loss(student, [ex], Loss.KL) for ex in arch_examples]
        for ex, got in zip(arch_examples, per_example):
            logits = student(input_ids=torch.tensor([ex.prompt_ids + ex.response_ids])).logits[0]
            expected = distillation_loss(Loss.KL, ex.distribution(logits.shape[-1])[None],
                                         torch.tensor([ex.response_ids]), logits[30 + len(ex.prompt_ids) - 1:-1][None],
                                         torch.ones(1, len(ex.response_ids)))
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        # the batch's loss is the per-example losses' mean weighted by reply length
        lengths = torch.tensor([len(ex.response_ids) for ex in arch_examples], dtype=torch.float)
        torch.testing.assert_close(batch_loss(student, arch_examples, Loss.KL),
                                   (torch.stack(per_example) * lengths).sum() / lengths.sum(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss", list(Loss))
def test_a_few_steps_lower_the_loss(base, examples, tmp_path, loss):
    config = DistillConfig(loss=loss, num_virtual_tokens=4, steps=8, batch_size=4, lr=0.05, eval_every=8)
    result = train(base, examples, examples, config, tmp_path)
    student = make_student(base, config)
    with torch.no_grad():
        before = evaluate_loss(student, examples, config)
    assert result["history"][-1]["eval_loss"] < 0.9 * before
    assert (tmp_path / "adapter_model.safetensors").exists()


def test_keep_steps_writes_the_adapter_of_every_evaluated_step(base, examples, tmp_path):
    config = DistillConfig(num_virtual_tokens=4, steps=4, batch_size=4, lr=0.05, eval_every=2, keep_steps=True)
    train(base, examples, examples, config, tmp_path)
    assert sorted(p.name for p in (tmp_path / "steps").iterdir()) == ["2", "4"]
    final, last = (load_file(d / "adapter_model.safetensors") for d in (tmp_path, tmp_path / "steps" / "4"))
    assert final.keys() == last.keys() and all(torch.equal(final[k], last[k]) for k in final)
    earlier = load_file(tmp_path / "steps" / "2" / "adapter_model.safetensors")
    assert not all(torch.equal(earlier[k], last[k]) for k in final)  # the step-2 prompt, not a copy of the last


def test_quantization_aware_training_lowers_the_4bit_loss(base, examples, tmp_path):
    config = DistillConfig(num_virtual_tokens=4, steps=8, batch_size=4, lr=0.05, eval_every=8, quantization_aware=True)
    student = make_student(base, config)
    weights = {k: v.clone() for k, v in base.model.state_dict().items()}
    with simulated_4bit(student):  # the gradient reaches the prompt through the rounded activations
        batch_loss(student, examples[:1], Loss.KL).backward()
        with torch.no_grad():
            before = evaluate_loss(student, examples, config)
    assert prompt_weight(student).grad.abs().sum() > 0
    assert all(torch.equal(v, weights[k]) for k, v in base.model.state_dict().items())  # restored on exit
    result = train(base, examples, examples, config, tmp_path / "qat")
    assert result["history"][-1]["eval_loss_4bit"] < 0.9 * before
    # --init-from: a second run starts exactly where the first one ended
    again = make_student(base, DistillConfig(num_virtual_tokens=4, init_from=str(tmp_path / "qat")))
    trained = load_file(tmp_path / "qat" / "adapter_model.safetensors")["prompt_embeddings"]
    assert torch.equal(prompt_weight(again).detach(), trained)


def test_quantized_weight_scales_the_quantized_students_loss(base, examples):
    config = DistillConfig(num_virtual_tokens=4, quantization_aware=True)
    student = make_student(base, config)
    with torch.no_grad():
        fp32 = batch_loss(student, examples, Loss.KL)
        with simulated_4bit(student):
            quantized = batch_loss(student, examples, Loss.KL)
        weighted = training_loss(student, examples, DistillConfig(num_virtual_tokens=4, quantization_aware=True,
                                                                  quantized_weight=3.0))
    assert fp32 > 0 and quantized > 0 and not torch.equal(quantized, fp32)
    torch.testing.assert_close(weighted, fp32 + 3.0 * quantized, rtol=1e-5, atol=0)
    with pytest.raises(UserError, match="--quantized-weight must be > 0, got 0"):
        DistillConfig(quantized_weight=0)


def test_opening_weight_counts_the_first_reply_token_w_times(base, examples):
    """The loss is a weighted mean over reply tokens: the first counts W times each later one."""
    student = make_student(base, DistillConfig(num_virtual_tokens=4))
    with torch.no_grad():
        per_token = [[batch_loss(student, [ex], Loss.KL, opening_weight=w) for w in (1.0, 1e-6, 5.0)] for ex in examples]
    for ex, (plain, rest, weighted) in zip(examples, per_token):
        n = len(ex.response_ids)
        first = plain * n - rest * (n - 1)  # the first token's loss, from the mean with and without it
        torch.testing.assert_close(weighted, (5 * first + rest * (n - 1)) / (5 + n - 1), rtol=1e-4, atol=1e-6)
    with pytest.raises(UserError, match="--opening-weight must be > 0"):
        DistillConfig(opening_weight=0)


def test_balanced_batches_hold_both_classes_half_and_half():
    flagged = [True] * 9 + [False] * 3
    for step in range(6):
        order = balanced_order(flagged, 4, seed=0, step=step)
        assert sorted(flagged[i] for i in order) == [False, False, True, True]
    assert {i for step in range(3) for i in balanced_order(flagged, 4, 0, step)} >= {9, 10, 11}  # every answered one
    with pytest.raises(UserError, match="both refused"):
        balanced_order([True] * 4, 4, 0, 0)


def test_paired_batches_hold_both_members_and_balance_the_decision_and_the_words():
    # 0-5: three pairs (safe, unsafe); 6-9 refused with an unsafe word, 10-11 refused without; 12 answered with one,
    # 13-15 answered without
    pairs = ((0, 1), (2, 3), (4, 5))
    flagged = [False, True] * 3 + [True] * 6 + [False] * 4
    edgy = (True,) * 6 + (True,) * 4 + (False,) * 2 + (True,) + (False,) * 3
    for step in range(8):
        order = paired_order(flagged, edgy, pairs, 8, 1, seed=0, step=step)
        assert len(order) == 8 and order[0] // 2 == order[1] // 2 < 3 and order[0] % 2 == 0  # a pair, side by side
        rest = order[2:]
        assert sum(flagged[i] for i in rest) == 3 and all(i >= 6 for i in rest)
        refused_edgy = sum(flagged[i] and edgy[i] for i in rest)
        answered_edgy = sum(not flagged[i] and edgy[i] for i in rest)
        assert refused_edgy == answered_edgy == 1
    assert {order[0] for step in range(3) for order in [paired_order(flagged, edgy, pairs, 8, 1, 0, step)]} == {0, 2, 4}
    only_plain = (True,) * 6 + (False,) * 10  # no edgy prompt outside the pairs: the plain ones fill the quotas
    assert len(paired_order(flagged, only_plain, pairs, 8, 2, 0, 0)) == 8
    with pytest.raises(UserError, match="besides the pairs"):
        paired_order([False, True], (True, True), ((0, 1),), 4, 1, 0, 0)
    with pytest.raises(UserError, match="--pairs-per-batch 3"):
        DistillConfig(batch_size=4, pairs_per_batch=3)


def _teacher_token_gaps(student, examples) -> torch.Tensor:
    """Per response token, the student's logit on the teacher's token minus its best rival's."""
    gaps = []
    with torch.no_grad():
        for ex in examples:
            ids = torch.tensor([ex.prompt_ids + ex.response_ids])
            logits = student(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0]
            n = student.peft_config["default"].num_virtual_tokens
            at = logits[n + len(ex.prompt_ids) - 1: n + len(ex.prompt_ids) - 1 + len(ex.response_ids)]
            target = torch.tensor(ex.response_ids)
            top = at.gather(1, target[:, None]).squeeze(1)
            gaps.append(top - at.scatter(1, target[:, None], float("-inf")).amax(1))
    return torch.cat(gaps)


def test_margin_training_widens_the_teacher_tokens_lead(base, examples, tmp_path):
    common = dict(num_virtual_tokens=4, steps=30, batch_size=4, lr=0.1, eval_every=30)
    train(base, examples, examples, DistillConfig(**common), tmp_path / "kl")
    train(base, examples, examples, DistillConfig(**common, margin=4.0), tmp_path / "margin")
    kl = _teacher_token_gaps(make_student(base, DistillConfig(num_virtual_tokens=4, init_from=str(tmp_path / "kl"))),
                             examples)
    wide = _teacher_token_gaps(make_student(base, DistillConfig(num_virtual_tokens=4,
                                                                init_from=str(tmp_path / "margin"))), examples)
    # the same steps from the same start: the hinge's run leads by 0.68 vs 0.13 nats (capped at the margin)
    assert wide.clamp_max(4.0).mean() > kl.clamp_max(4.0).mean() + 0.3
    # the hinge is added to the distillation loss, nothing else changes
    student = make_student(base, DistillConfig(num_virtual_tokens=4))
    with torch.no_grad():
        with_margin = batch_loss(student, examples, Loss.KL, margin=4.0)
        assert with_margin > batch_loss(student, examples, Loss.KL)
    with pytest.raises(UserError, match="--margin must be >= 0 nats"):
        DistillConfig(margin=-1)


def test_resume_equals_an_uninterrupted_run(base, examples, tmp_path):
    config = DistillConfig(num_virtual_tokens=4, steps=6, batch_size=2, lr=0.05, eval_every=3)
    whole_run = train(base, examples, examples, config, tmp_path / "whole")
    train(base, examples, examples, DistillConfig(**{**config.__dict__, "steps": 3}), tmp_path / "split")
    split_run = train(base, examples, examples, config, tmp_path / "split")  # resumes at step 3
    whole = load_file(tmp_path / "whole" / "adapter_model.safetensors")["prompt_embeddings"]
    split = load_file(tmp_path / "split" / "adapter_model.safetensors")["prompt_embeddings"]
    assert torch.equal(whole, split)
    assert split_run["history"] == whole_run["history"] and [h["step"] for h in whole_run["history"]] == [3, 6]
    again = train(base, examples, examples, config, tmp_path / "split")  # nothing left to train: same history
    assert again["history"] == whole_run["history"]






def test_cosine_schedule_falls_from_lr_to_zero_and_constant_stays():
    cosine = DistillConfig(lr=0.02, steps=100, lr_schedule=LRSchedule.COSINE)
    rates = [learning_rate(cosine, step) for step in range(100)]
    assert rates[0] == 0.02 and rates[50] == pytest.approx(0.01) and 0 < rates[-1] < 1e-5
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert {learning_rate(DistillConfig(lr=0.02, steps=100), step) for step in range(100)} == {0.02}


# --- --method lora ------------------------------------------------------------------------------------------------

LORA = DistillConfig(method=Method.LORA, lora_rank=4, steps=8, batch_size=4, lr=1e-2, eval_every=8)


def _with(config: DistillConfig, **changes) -> DistillConfig:
    return DistillConfig(**{**config.__dict__, **changes})


def test_lora_gradients_reach_only_the_adapter_and_the_llm_stays_plain(base, examples):
    weights = {k: v.clone() for k, v in base.model.state_dict().items()}
    student = make_student(base, LORA)
    params = trainable_parameters(student)
    # all-linear: A and B of the 7 projections of both blocks, never the LM head or the embeddings
    assert len(params) == 2 * 7 * 2 and all(".lora_A." in n or ".lora_B." in n for n in params)
    assert not any("lm_head" in n or "embed" in n for n in params)
    with torch.no_grad():  # B = 0: the student starts as the LLM itself
        ids = torch.tensor([examples[2].prompt_ids])
        torch.testing.assert_close(student(input_ids=ids).logits, base.model(input_ids=ids).logits, rtol=0, atol=0)
    batch_loss(student, examples[:2], Loss.KL).backward()
    assert all(p.grad is not None for p in params.values())
    assert all(p.grad.abs().sum() > 0 for n, p in params.items() if ".lora_B." in n)  # dL/dA = 0 while B = 0
    frozen = [p for p in student.parameters() if not p.requires_grad]
    assert frozen and all(p.grad is None for p in frozen)
    # the caller's LLM (the teacher's, the reference's) gets no LoRA layers, no gradients, no changes
    assert not any("lora" in n for n, _ in base.model.named_modules())
    assert all(p.grad is None for p in base.model.parameters())
    assert all(torch.equal(v, weights[k]) for k, v in base.model.state_dict().items())


@pytest.mark.parametrize("loss", list(Loss))
def test_lora_a_few_steps_lower_the_loss(base, examples, tmp_path, loss):
    config = _with(LORA, loss=loss, steps=16, eval_every=16)
    with torch.no_grad():
        before = evaluate_loss(make_student(base, config), examples, config)
    result = train(base, examples, examples, config, tmp_path)
    # seed 0: tv 0.50 -> 0.34, kl 3.10 -> 0.06, direct 4.25 -> 0.04
    assert result["history"][-1]["eval_loss"] < 0.9 * before
    assert result["config"]["method"] == "lora" and result["config"]["lr"] == 1e-2
    assert json.loads((tmp_path / "adapter_config.json").read_text())["peft_type"] == "LORA"


def test_lora_resume_equals_an_uninterrupted_run(base, examples, tmp_path):
    config = _with(LORA, steps=6, batch_size=2, lr=0.01, eval_every=3)
    whole_run = train(base, examples, examples, config, tmp_path / "whole")
    train(base, examples, examples, _with(config, steps=3), tmp_path / "split")
    split_run = train(base, examples, examples, config, tmp_path / "split")  # resumes at step 3
    whole = load_file(tmp_path / "whole" / "adapter_model.safetensors")
    split = load_file(tmp_path / "split" / "adapter_model.safetensors")
    assert whole.keys() == split.keys() and all(torch.equal(whole[k], split[k]) for k in whole)  # bit for bit
    assert split_run["history"] == whole_run["history"] and [h["step"] for h in whole_run["history"]] == [3, 6]
    # another method, or other LoRA settings, never resume this run's checkpoint
    with pytest.raises(UserError, match="holds a --method lora run"):
        train(base, examples, examples, DistillConfig(num_virtual_tokens=4, steps=6), tmp_path / "split")
    with pytest.raises(UserError, match="other adapter settings"):
        train(base, examples, examples, _with(config, lora_rank=2, steps=7), tmp_path / "split")


def test_saved_lora_loads_in_peft_with_the_trained_logits(base, examples, tmp_path, tiny_models):
    train(base, examples, examples, LORA, tmp_path)
    trained = make_student(base, LORA)  # the trained parameters, from the last step's checkpoint
    _load_checkpoint(tmp_path, trained, torch.optim.Adam(trainable_parameters(trained).values()), Method.LORA)
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_models["llama"]), tmp_path).eval()
    ids = torch.tensor([examples[0].prompt_ids + examples[0].response_ids])
    with torch.no_grad():
        want, got = trained(input_ids=ids).logits, peft(input_ids=ids).logits
        plain = base.model(input_ids=ids).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert (got - plain).abs().max() > 1.0  # the adapter changed the model
    sidecar_free = sorted(p.name for p in tmp_path.iterdir())
    assert {"adapter_config.json", "adapter_model.safetensors", CHECKPOINT} <= set(sidecar_free)


def test_a_soft_prompt_checkpoint_of_the_single_tensor_layout_resumes(base, examples, tmp_path):
    """Checkpoints written before LoRA ("prompt", "adam.SLOT") resume exactly as today's."""
    config = DistillConfig(num_virtual_tokens=4, steps=6, batch_size=2, lr=0.05, eval_every=3)
    train(base, examples, examples, config, tmp_path / "whole")
    train(base, examples, examples, _with(config, steps=3), tmp_path / "old")
    state = tmp_path / "old" / CHECKPOINT / "state.safetensors"
    tensors = load_file(state)
    (name,) = [k for k in tensors if k.startswith("param.")]
    save_file({"prompt": tensors.pop(name), **{f"adam.{k.split('.', 2)[2]}": v for k, v in tensors.items()}}, state)
    meta = json.loads((state.parent / "state.json").read_text())
    (state.parent / "state.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "method"}))
    train(base, examples, examples, config, tmp_path / "old")
    assert torch.equal(load_file(tmp_path / "old" / "adapter_model.safetensors")["prompt_embeddings"],
                       load_file(tmp_path / "whole" / "adapter_model.safetensors")["prompt_embeddings"])


def test_lora_settings_are_checked_before_any_work(base):
    with pytest.raises(UserError, match="--lora-target-modules qkv: no such Linear in this model; its Linears: "
                                        "down_proj gate_proj k_proj lm_head o_proj q_proj up_proj v_proj"):
        check_student(base, _with(LORA, lora_target_modules=("q_proj", "qkv")))
    check_student(base, _with(LORA, lora_target_modules=("q_proj", "v_proj")))
    for changes, message in [({"lora_rank": 0}, "--lora-rank must be >= 1"),
                             ({"lora_alpha": 0.0}, "--lora-alpha must be > 0"),
                             ({"lora_target_modules": ("all-linear", "q_proj")}, "or all-linear alone"),
                             ({"quantization_aware": True}, "--quantization-aware trains a soft prompt"),
                             ({"init_from": "p"}, "--init-from takes a prompt-tuning directory")]:
        with pytest.raises(UserError, match=message):
            _with(LORA, **changes)
    assert DistillConfig().lr == 1e-2 and DistillConfig(method=Method.LORA).lr == 2e-4


# --- --method steering --------------------------------------------------------------------------------------------

STEERING = DistillConfig(method=Method.STEERING, steering_layers=(1, 2), steps=8, batch_size=4, lr=0.1, eval_every=8)


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    """A 3-block tiny llama: a middle block (1) and the last one (2) to steer (llama.cpp never steers block 0)."""
    return read_model(make_model_dir(tmp_path_factory.mktemp("deep") / "llama3", "llama", n_layers=3)).load()


@pytest.fixture(scope="module")
def deep_examples(deep):
    return teacher_examples(deep, LabelGuard(frozenset(HARMFUL)), HARMFUL + BENIGN, max_response_tokens=8)


def _no_hooks(model) -> bool:
    return not any(block._forward_hooks for block in decoder_layers(model))


def test_steering_gradients_reach_only_the_vectors_and_the_llm_stays_plain(deep, deep_examples):
    weights = {k: v.clone() for k, v in deep.model.state_dict().items()}
    student = make_student(deep, STEERING)
    params = trainable_parameters(student)
    assert list(params) == ["vectors.1", "vectors.2"] and all(p.shape == (64,) for p in params.values())
    ids = torch.tensor([deep_examples[2].prompt_ids])
    with torch.no_grad():  # zero vectors: the student starts as the LLM itself
        torch.testing.assert_close(student(input_ids=ids).logits, deep.model(input_ids=ids).logits, rtol=0, atol=0)
    batch_loss(student, deep_examples[:2], Loss.KL).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params.values())
    assert all(p.grad is None for p in deep.model.parameters())  # the LLM is frozen, its weights untouched
    assert all(torch.equal(v, weights[k]) for k, v in deep.model.state_dict().items())
    with torch.no_grad():
        for p in params.values():
            p.add_(1.0)
        steered = student(input_ids=ids).logits
        assert (steered - deep.model(input_ids=ids).logits).abs().max() > 0.1  # the vectors act inside the student
    assert _no_hooks(deep.model)  # and nowhere else: the teacher's and the reference's LLM computes as before


@pytest.mark.parametrize("loss", list(Loss))
def test_steering_a_few_steps_lower_the_loss(deep, deep_examples, tmp_path, loss):
    """On the refused prompts: two constant vectors in a random-weight model have no harmfulness feature to act on,
    so on the mixed set they cannot tell the prompts apart, and TV starts at a saddle there (answered prompts at 0,
    refusals saturated near 1: 0.499 -> 0.503 in 40 steps, measured; kl 3.69 -> 2.25, direct 4.85 -> 3.40)."""
    refusals = [ex for ex in deep_examples if ex.flagged]
    config = _with(STEERING, loss=loss, steps=32, eval_every=32, lr=0.3)
    with torch.no_grad():
        before = evaluate_loss(make_student(deep, config), refusals, config)
    result = train(deep, refusals, refusals, config, tmp_path)
    after = result["history"][-1]["eval_loss"]
    # seed 0: tv 1.00 -> 0.84, kl and direct 7.38 -> 3.5
    assert after < 0.9 * before, (before, after)
    assert result["config"]["method"] == "steering" and result["config"]["steering_layers"] == (1, 2)
    assert (tmp_path / CONTROL_VECTOR_FILE).is_file() and _no_hooks(deep.model)


def test_steering_resume_equals_an_uninterrupted_run(deep, deep_examples, tmp_path):
    config = _with(STEERING, steps=6, batch_size=2, eval_every=3)
    whole_run = train(deep, deep_examples, deep_examples, config, tmp_path / "whole")
    train(deep, deep_examples, deep_examples, _with(config, steps=3), tmp_path / "split")
    split_run = train(deep, deep_examples, deep_examples, config, tmp_path / "split")  # resumes at step 3
    whole, split = (load_steering(tmp_path / d / CONTROL_VECTOR_FILE, deep.config).vectors for d in ("whole", "split"))
    assert whole.keys() == split.keys() == {1, 2} and all(torch.equal(whole[k], split[k]) for k in whole)  # bit for bit
    assert split_run["history"] == whole_run["history"] and [h["step"] for h in whole_run["history"]] == [3, 6]
    with pytest.raises(UserError, match="holds a --method steering run"):
        train(deep, deep_examples, deep_examples, DistillConfig(num_virtual_tokens=4, steps=6), tmp_path / "split")
    with pytest.raises(UserError, match="other adapter settings"):
        train(deep, deep_examples, deep_examples, _with(config, steering_layers=(1,), steps=7), tmp_path / "split")


def test_saved_control_vector_reads_back_in_gguf_and_steers_the_reference_as_the_student(deep, deep_examples,
                                                                                          tmp_path):
    train(deep, deep_examples, deep_examples, STEERING, tmp_path)
    trained = make_student(deep, STEERING)  # the trained vectors, from the last step's checkpoint
    _load_checkpoint(tmp_path, trained, torch.optim.Adam(trainable_parameters(trained).values()), Method.STEERING)
    reader = GGUFReader(str(tmp_path / CONTROL_VECTOR_FILE))  # llama.cpp's layout, read by gguf's own reader
    fields = {name: field.contents() for name, field in reader.fields.items()}
    assert fields["general.architecture"] == "controlvector" and fields["controlvector.model_hint"] == "llama"
    assert fields["controlvector.layer_count"] == 2
    tensors = {t.name: t for t in reader.tensors}
    assert sorted(tensors) == ["direction.1", "direction.2"]
    for layer in (1, 2):
        t = tensors[f"direction.{layer}"]
        assert t.tensor_type.name == "F32" and list(t.shape) == [64]
        assert torch.equal(torch.tensor(t.data), trained.vectors[str(layer)].detach())
    assert trained.vectors["1"].norm() > 0.1  # trained away from zero
    # the parity reference (hooks) computes what the student trained
    ids = torch.tensor([deep_examples[0].prompt_ids + deep_examples[0].response_ids])
    with torch.no_grad():
        want = trained(input_ids=ids).logits
        got = Reference(deep, steering=load_steering(tmp_path / CONTROL_VECTOR_FILE, deep.config)).model(
            input_ids=ids).logits
    for block in decoder_layers(deep.model):  # Reference's hooks stay on the model it was given: remove them here
        block._forward_hooks.clear()
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_steering_trains_quantization_aware(deep, deep_examples):
    """The vectors stay fp32 constants in a 4-bit bundle: training through the simulated 4-bit LLM reaches them."""
    config = _with(STEERING, quantization_aware=True)
    student = make_student(deep, config)
    with torch.no_grad():
        fp32 = batch_loss(student, deep_examples, Loss.KL)
        with simulated_4bit(student):
            quantized = batch_loss(student, deep_examples, Loss.KL)
    assert not torch.equal(fp32, quantized)
    training_loss(student, deep_examples[:2], config).backward()
    assert all(p.grad.abs().sum() > 0 for p in trainable_parameters(student).values())
    assert all(p.grad is None for p in deep.model.parameters()) and _no_hooks(deep.model)






def test_the_untrained_baseline_is_the_mean_difference(deep, deep_examples, tmp_path):
    prompts = [(ex.prompt_ids, ex.flagged) for ex in deep_examples]
    config = DistillConfig(method=Method.STEERING, steering_layers=(1,), steering_init=SteeringInit.MEAN_DIFFERENCE,
                           steering_scale=0.5, steps=0)
    assert config.baseline_only
    result = train(deep, [], [], config, tmp_path, prompts=prompts)
    assert result["history"] == [] and not (tmp_path / CHECKPOINT).exists()
    saved = load_steering(tmp_path / CONTROL_VECTOR_FILE, deep.config).vectors
    torch.testing.assert_close(saved[1], mean_difference(deep.model, prompts, (1,), 0.5)[1], rtol=1e-5, atol=1e-5)
    student = make_student(deep, _with(STEERING, steering_init=SteeringInit.MEAN_DIFFERENCE, steering_scale=2.0),
                           prompts)  # the trained vectors start from it
    same = mean_difference(deep.model, prompts, (1, 2), scale=2.0)
    assert all(torch.equal(student.vectors[str(n)].detach(), same[n]) for n in (1, 2))


def test_steering_settings_are_checked_before_any_work(deep, base):
    with pytest.raises(UserError, match="layer 3 is out of range: this model's 3 blocks take steering vectors after "
                                        "blocks 1 to 2"):
        check_student(deep, _with(STEERING, steering_layers=(1, 3)))
    with pytest.raises(UserError, match="layer 0 is out of range.*llama.cpp never steers layer 0"):
        check_student(deep, _with(STEERING, steering_layers=(0,)))
    check_student(deep, STEERING)
    assert trainable_parameters(make_student(base, _with(STEERING, steering_layers=()))).keys() == {"vectors.1"}
    assert list(trainable_parameters(make_student(deep, _with(STEERING, steering_layers=())))) == ["vectors.1"]
    for changes, message in [({"steering_layers": (1, 1)}, "lists a layer twice"),
                             ({"steering_scale": 2.0}, "--steering-scale scales the mean-difference vectors"),
                             ({"steering_init": SteeringInit.MEAN_DIFFERENCE, "steering_scale": float("nan")},
                              "--steering-scale must be a finite number"),
                             ({"init_from": "p"}, "--init-from takes a prompt-tuning directory"),
                             ({"steps": 0}, "--steps 0 trains nothing")]:
        with pytest.raises(UserError, match=message):
            _with(STEERING, **changes)
    with pytest.raises(UserError, match="--steps 0 trains nothing"):
        DistillConfig(steps=0)
    assert DistillConfig(method=Method.STEERING).lr == 1e-2


# --- checkpoints: whole or absent, a killed run's scratch removed on resume ----------------------------------------

def test_the_learning_rate_is_a_finite_positive_number():
    for lr in (0.0, -1e-3, float("nan"), float("inf")):
        with pytest.raises(UserError, match=f"--lr must be a finite number > 0 .*, got {lr}"):
            DistillConfig(lr=lr)


@pytest.mark.integration
def test_a_run_killed_anywhere_resumes_and_leaves_no_scratch(tiny_models, tmp_path):
    """`softfold distill` killed with SIGKILL while it trains and checkpoints every step, its scratch files left as
    a kill inside a write leaves them (safetensors' .tmpXXXXXX, ours .partial): the resume removes them, starts
    from the checkpoint it finds whole, and finishes."""
    from softfold.cli.main import main

    (tmp_path / "h.txt").write_text("\n".join(HARMFUL) + "\n")
    (tmp_path / "b.txt").write_text("\n".join(BENIGN) + "\n")
    out, ckpt = tmp_path / "out", tmp_path / "out" / CHECKPOINT

    def argv(steps: int) -> list[str]:
        return ["distill", "--model", str(tiny_models["llama"]), "--out", str(out), "--harmful",
                str(tmp_path / "h.txt"), "--benign", str(tmp_path / "b.txt"), "--num-virtual-tokens", "4",
                "--steps", str(steps), "--eval-every", "1", "--batch-size", "2", "--max-response-tokens", "4"]

    run = subprocess.Popen([sys.executable, "-m", "softfold.cli", *argv(400)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (ckpt / "state.json").exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    run.kill()  # SIGKILL: no handler runs
    assert run.wait() == -signal.SIGKILL and (ckpt / "state.json").exists()
    (ckpt / ".tmpAb12Cd").write_bytes(b"half a state.safetensors")
    (ckpt / "state.json.partial").write_text('{"step": ')
    (out / ".tmpXy34Zw").write_bytes(b"half an adapter")
    killed_at = json.loads((ckpt / "state.json").read_text())["step"]
    assert 0 < killed_at < 400
    assert main(argv(killed_at + 2)) == 0
    assert sorted(p.name for p in ckpt.iterdir()) == ["state.json", "state.safetensors"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".tmp")]
    history = json.loads((out / "softfold_distill.json").read_text())["history"]
    assert [h["step"] for h in history] == list(range(1, killed_at + 3))  # resumed where the checkpoint was
