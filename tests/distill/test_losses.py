import math

import torch

from softfold.distill.losses import direct_cross_entropy, kl_divergence, margin_hinge, total_variation


def logits_of(*probs: list[float]) -> torch.Tensor:
    return torch.tensor([probs]).log()  # [1, positions, vocab]


def test_total_variation_by_hand():
    teacher = logits_of([0.5, 0.5, 0.0 + 1e-12], [0.9, 0.05, 0.05])
    student = logits_of([0.25, 0.25, 0.5], [0.9, 0.05, 0.05])
    mask = torch.tensor([[1, 1]])
    # position 0: 0.5 * (0.25 + 0.25 + 0.5) = 0.5; position 1: 0 -> mean 0.25
    assert math.isclose(total_variation(teacher, student, mask).item(), 0.25, abs_tol=1e-6)
    assert math.isclose(total_variation(teacher, student, torch.tensor([[1, 0]])).item(), 0.5, abs_tol=1e-6)


def test_kl_by_hand():
    teacher = logits_of([0.5, 0.5], [0.2, 0.8])
    student = logits_of([0.25, 0.75], [0.2, 0.8])
    mask = torch.tensor([[1, 1]])
    want = (0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)) / 2
    assert math.isclose(kl_divergence(teacher, student, mask).item(), want, rel_tol=1e-5)
    assert kl_divergence(student, student, mask).item() == 0.0


def test_direct_cross_entropy_by_hand():
    student = logits_of([0.25, 0.75], [0.6, 0.4])
    targets = torch.tensor([[1, 0]])
    want = -(math.log(0.75) + math.log(0.6)) / 2
    assert math.isclose(direct_cross_entropy(targets, student, torch.tensor([[1, 1]])).item(), want, rel_tol=1e-5)


def test_margin_hinge_by_hand():
    student = torch.tensor([[[2.0, 0.5, 1.0], [0.0, 3.0, -1.0]]])
    targets = torch.tensor([[0, 1]])
    # position 0: gap 2.0 - 1.0 = 1.0 -> 2.0 - 1.0 = 1.0 short; position 1: gap 3.0, nothing owed -> mean 0.5
    assert math.isclose(margin_hinge(targets, student, torch.tensor([[1, 1]]), 2.0).item(), 0.5, abs_tol=1e-6)
    assert margin_hinge(targets, student, torch.tensor([[0, 1]]), 2.0).item() == 0.0
    # a wrong argmax owes the margin plus its deficit: target 2 at position 0 trails 2.0 by 1.0
    assert math.isclose(margin_hinge(torch.tensor([[2, 1]]), student, torch.tensor([[1, 0]]), 2.0).item(), 3.0)
