"""The teacher: the dual system (base LLM + guard). Flagged prompts get a fixed refusal, others the LLM's answer.

Its output distribution at each response position is what the student matches: the base model's
next-token distribution on answered prompts, and a point mass on the refusal's tokens otherwise.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from softfold.load import BaseModel
from softfold.generate import greedy_batch
from softfold.prompt_format import chat_ids
from softfold.reference import eos_ids

DEFAULT_REFUSAL = "I'm sorry, but I can't help with that request."
POINT_MASS_LOGIT = -1e4  # logits of a point mass: 0 on the token, this elsewhere


@dataclass(frozen=True)
class TeacherExample:
    prompt: str
    flagged: bool
    prompt_ids: list[int]
    response_ids: list[int]
    logits: torch.Tensor | None  # [len(response_ids), vocab], the base model's; None for a refusal (a point mass)

    def distribution(self, vocab_size: int) -> torch.Tensor:
        """Logits of the teacher's next-token distribution at each response position (refusals built on demand:
        1,000 of them as dense tensors would take GBs)."""
        return point_mass(self.response_ids, vocab_size) if self.logits is None else self.logits


def point_mass(response: list[int], vocab_size: int) -> torch.Tensor:
    logits = torch.full((len(response), vocab_size), POINT_MASS_LOGIT)
    logits[torch.arange(len(response)), torch.tensor(response)] = 0.0
    return logits


def save_examples(examples: list[TeacherExample], path: Path, key: str) -> None:
    """The teacher's output for reuse across runs (loss sweeps); refusals are stored without their point masses."""
    from safetensors.torch import save_file

    meta = [{"prompt": ex.prompt, "flagged": ex.flagged, "prompt_ids": ex.prompt_ids, "response_ids": ex.response_ids}
            for ex in examples]
    tensors = {f"logits.{i}": ex.logits.contiguous() for i, ex in enumerate(examples) if not ex.flagged}
    tmp = Path(path).with_suffix(".partial")
    save_file(tensors, tmp, metadata={"key": key, "examples": json.dumps(meta)})
    tmp.replace(path)


def load_examples(path: Path, key: str) -> dict[str, TeacherExample]:
    """The examples saved under `key`, by prompt; empty when the file is missing or holds another teacher's."""
    from safetensors import safe_open

    if not Path(path).exists():
        return {}
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        if meta.get("key") != key:
            return {}
        return {m["prompt"]: TeacherExample(m["prompt"], m["flagged"], m["prompt_ids"], m["response_ids"],
                                            None if m["flagged"] else f.get_tensor(f"logits.{i}"))
                for i, m in enumerate(json.loads(meta["examples"]))}


def teacher_examples(base: BaseModel, guard, prompts: list[str], max_response_tokens: int,
                     refusal: str = DEFAULT_REFUSAL) -> list[TeacherExample]:
    """The dual system's reply to each prompt: the fixed refusal when the guard flags it, else the base model's
    greedy reply with the distributions that chose it (batched; left padding changes no reply)."""
    tok, stop = base.tokenizer, eos_ids(base)
    refusal_ids = tok(refusal, add_special_tokens=False)["input_ids"][:max_response_tokens - 1] + [stop[0]]
    ids = [chat_ids(tok, p) for p in prompts]
    flags = guard.flags(prompts)
    answered = [i for i, flagged in enumerate(flags) if not flagged]
    replies = dict(zip(answered, greedy_batch(base.model, [ids[i] for i in answered], max_response_tokens, set(stop),
                                              keep_logits=True, desc="teacher")))
    return [TeacherExample(p, True, i, refusal_ids, None) if flagged else
            TeacherExample(p, False, i, replies[n].tokens, replies[n].logits)
            for n, (p, i, flagged) in enumerate(zip(prompts, ids, flags))]
