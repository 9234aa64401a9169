"""`softfold eval`: refusal rate on harmful prompts and answer rate on benign ones, from generated text.

Systems side by side: the base model, the dual system (base + guard), base + soft prompt in fp32
PyTorch, and exported bundles through their phone engines (TextLLMRunner, onnxruntime-genai), whose
refusal decisions are also compared one by one with the fp32 soft prompt's.
"""
import json
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from softfold.calibrate.refusal import is_refusal
from softfold.load import BaseModel
from softfold.reference import Reference, chat_text
from softfold.text_runner import cut_at_stop


@dataclass(frozen=True)
class Behavior:
    harmful_refusal_rate: float
    benign_answer_rate: float
    harmful: int
    benign: int
    refused: tuple[bool, ...] = ()  # per prompt, harmful then benign

    def agreement(self, other: "Behavior") -> float:
        """Fraction of prompts where both systems made the same refuse-or-answer decision."""
        return sum(a == b for a, b in zip(self.refused, other.refused)) / max(len(self.refused), 1)


def replies(reference: Reference, prompts: list[str], max_new_tokens: int, desc: str) -> list[str]:
    stop = set(reference.eos_ids)
    out = []
    for prompt in tqdm(prompts, desc=desc, leave=False):
        ids = reference.greedy(reference.prompt_ids(prompt), max_new_tokens)
        out.append(reference.tokenizer.decode([t for t in ids if t not in stop]))
    return out


def bundle_replies(bundle: Path, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy replies through the bundle's phone engine, cut at its stop strings as an app does."""
    from softfold.engines import bundle_engine

    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    engine = bundle_engine(Path(bundle), manifest)
    out = []
    for prompt in tqdm(prompts, desc=Path(bundle).name, leave=False):
        reply = engine.greedy(chat_text(tokenizer, prompt), max_new_tokens)
        text = reply if isinstance(reply, str) else tokenizer.decode(reply)
        out.append(cut_at_stop(text, manifest["model"]["stop_strings"]))
    return out


def behavior(refused_harmful: list[bool], refused_benign: list[bool]) -> Behavior:
    return Behavior(sum(refused_harmful) / len(refused_harmful), 1 - sum(refused_benign) / len(refused_benign),
                    len(refused_harmful), len(refused_benign), tuple(refused_harmful + refused_benign))


def evaluate(base: BaseModel, harmful: list[str], benign: list[str], soft_prompt: Path | None = None, guard=None,
             max_new_tokens: int = 48, bundles: tuple[Path, ...] = (), include_base: bool = True) -> dict[str, Behavior]:
    """Behavior of the base model, the dual system (when a guard is given), base + soft prompt, and bundles."""
    results = {}
    if include_base or guard is not None:
        plain = Reference(base)
        base_h = [is_refusal(t) for t in replies(plain, harmful, max_new_tokens, "base, harmful")]
        base_b = [is_refusal(t) for t in replies(plain, benign, max_new_tokens, "base, benign")]
        results["base"] = behavior(base_h, base_b)
        if guard is not None:
            flagged_h, flagged_b = guard.flags(harmful), guard.flags(benign)
            results["dual"] = behavior([f or r for f, r in zip(flagged_h, base_h)],
                                       [f or r for f, r in zip(flagged_b, base_b)])
    if soft_prompt is not None:
        student = Reference(base, soft_prompt)
        results["soft_prompt"] = behavior([is_refusal(t) for t in replies(student, harmful, max_new_tokens, "soft, harmful")],
                                          [is_refusal(t) for t in replies(student, benign, max_new_tokens, "soft, benign")])
    for bundle in bundles:
        results[Path(bundle).name] = behavior(
            [is_refusal(t) for t in bundle_replies(bundle, base.tokenizer, harmful, max_new_tokens)],
            [is_refusal(t) for t in bundle_replies(bundle, base.tokenizer, benign, max_new_tokens)])
    return results
