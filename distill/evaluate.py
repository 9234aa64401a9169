"""`softfold eval`: refusal rate on harmful prompts and answer rate on benign ones, from generated text.

Three systems side by side: the base model, the dual system (base + guard), and base + soft prompt.
"""
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from softfold.calibrate.refusal import is_refusal
from softfold.load import BaseModel
from softfold.reference import Reference


@dataclass(frozen=True)
class Behavior:
    harmful_refusal_rate: float
    benign_answer_rate: float
    harmful: int
    benign: int


def replies(reference: Reference, prompts: list[str], max_new_tokens: int, desc: str) -> list[str]:
    stop = set(reference.eos_ids)
    out = []
    for prompt in tqdm(prompts, desc=desc, leave=False):
        ids = reference.greedy(reference.prompt_ids(prompt), max_new_tokens)
        out.append(reference.tokenizer.decode([t for t in ids if t not in stop]))
    return out


def behavior(refused_harmful: list[bool], refused_benign: list[bool]) -> Behavior:
    return Behavior(sum(refused_harmful) / len(refused_harmful), 1 - sum(refused_benign) / len(refused_benign),
                    len(refused_harmful), len(refused_benign))


def evaluate(base: BaseModel, harmful: list[str], benign: list[str], soft_prompt: Path | None = None, guard=None,
             max_new_tokens: int = 48) -> dict[str, Behavior]:
    """Behavior of the base model, the dual system (when a guard is given) and base + soft prompt."""
    plain = Reference(base)
    base_h = [is_refusal(t) for t in replies(plain, harmful, max_new_tokens, "base, harmful")]
    base_b = [is_refusal(t) for t in replies(plain, benign, max_new_tokens, "base, benign")]
    results = {"base": behavior(base_h, base_b)}
    if guard is not None:
        flagged_h, flagged_b = guard.flags(harmful), guard.flags(benign)
        results["dual"] = behavior([f or r for f, r in zip(flagged_h, base_h)],
                                   [f or r for f, r in zip(flagged_b, base_b)])
    if soft_prompt is not None:
        student = Reference(base, soft_prompt)
        results["soft_prompt"] = behavior([is_refusal(t) for t in replies(student, harmful, max_new_tokens, "soft, harmful")],
                                          [is_refusal(t) for t in replies(student, benign, max_new_tokens, "soft, benign")])
    return results
