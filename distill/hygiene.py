"""Training-data hygiene for distillation: held-out sets kept out of training, a held-out slice for the loss
curve. The prompt files themselves: softfold.data."""
from softfold.errors import UserError


def check_disjoint(train: list[str], held_out: list[str], what: str) -> None:
    """No training prompt is a held-out one; else a one-line UserError naming one."""
    shared = set(train) & set(held_out)
    if shared:
        raise UserError(f"{len(shared)} training prompt(s) also appear in the {what} set, e.g. "
                        f"{sorted(shared)[0][:60]!r}: held-out evaluation data must never be trained on")


def split_held_out(prompts: list, fraction: float = 0.1) -> tuple[list, list]:
    """A deterministic held-out slice for the loss curve: every k-th prompt (or pair)."""
    k = max(round(1 / fraction), 2)
    return [p for i, p in enumerate(prompts) if i % k], [p for i, p in enumerate(prompts) if not i % k]
