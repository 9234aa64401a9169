"""The teacher: the dual system (base LLM + guard). Flagged prompts get a fixed refusal, others the LLM's answer.

Its output distribution at each response position is what the student matches: the base model's
next-token distribution on answered prompts, and a point mass on the refusal's tokens otherwise.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from softfold.load import BaseModel
from softfold.reference import chat_ids

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


def load_examples(path: Path, key: str, vocab_size: int) -> list[TeacherExample] | None:
    """The examples saved under `key`, or None when the file is missing or holds another teacher's output."""
    from safetensors import safe_open

    if not Path(path).exists():
        return None
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        if meta.get("key") != key:
            return None
        return [TeacherExample(m["prompt"], m["flagged"], m["prompt_ids"], m["response_ids"],
                               None if m["flagged"] else f.get_tensor(f"logits.{i}"))
                for i, m in enumerate(json.loads(meta["examples"]))]


@torch.no_grad()
def teacher_examples(base: BaseModel, guard, prompts: list[str], max_response_tokens: int,
                     refusal: str = DEFAULT_REFUSAL) -> list[TeacherExample]:
    from tqdm import tqdm

    from softfold.reference import eos_ids

    tok, model = base.tokenizer, base.model
    stop = eos_ids(base)
    refusal_ids = tok(refusal, add_special_tokens=False)["input_ids"][:max_response_tokens - 1] + [stop[0]]
    out = []
    for prompt, flagged in tqdm(list(zip(prompts, guard.flags(prompts))), desc="teacher", leave=False):
        ids = chat_ids(tok, prompt)
        if flagged:
            response = refusal_ids
            logits = None
        else:
            x = torch.tensor([ids])
            full = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_response_tokens,
                                  do_sample=False, eos_token_id=stop, pad_token_id=stop[0])[0]
            response = full[len(ids):].tolist()
            logits = model(input_ids=full.unsqueeze(0)).logits[0, len(ids) - 1:-1].float()
        out.append(TeacherExample(prompt, flagged, ids, response, logits))
    return out
