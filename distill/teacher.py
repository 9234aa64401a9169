"""The teacher: the dual system (base LLM + guard). Flagged prompts get a fixed refusal, others the LLM's answer.

Its output distribution at each response position is what the student matches: the base model's
next-token distribution on answered prompts, and a point mass on the refusal's tokens otherwise. The base model's
distributions are kept as their TEACHER_TOP_K likeliest tokens (renormalized over them): the full vocabulary at
every reply position of a few thousand prompts would take tens of GB, and the tail beyond the top tokens holds
a negligible share of the mass.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from softfold.inputs.base_model import BaseModel, eos_ids
from softfold.inputs.chat_template import chat_ids
from softfold.reference.greedy import greedy_batch

DEFAULT_REFUSAL = "I'm sorry, but I can't help with that request."
POINT_MASS_LOGIT = -1e4  # logits of a point mass: 0 on the token, this elsewhere
TEACHER_TOP_K = 256  # tokens kept of each answered position's distribution


@dataclass(frozen=True)
class TeacherExample:
    prompt: str
    flagged: bool
    prompt_ids: list[int]
    response_ids: list[int]
    # the base model's top logits [len(response_ids), k] and their token ids; None for a refusal (a point mass)
    logits: torch.Tensor | None
    token_ids: torch.Tensor | None = None

    def distribution(self, vocab_size: int) -> torch.Tensor:
        """Logits [len(response_ids), vocab] of the teacher's next-token distribution at each response position,
        built on demand: the kept top tokens (or the refusal's point mass), POINT_MASS_LOGIT elsewhere."""
        if self.logits is None:
            return point_mass(self.response_ids, vocab_size)
        dense = torch.full((len(self.response_ids), vocab_size), POINT_MASS_LOGIT)
        return dense.scatter_(1, self.token_ids, self.logits.float())


def top_k(logits: torch.Tensor, k: int = TEACHER_TOP_K) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, token ids) of each row's k largest logits, values shifted so each row's largest is 0."""
    values, ids = logits.topk(min(k, logits.shape[-1]), dim=-1)
    return (values - values[:, :1]).contiguous(), ids.contiguous()


def point_mass(response: list[int], vocab_size: int) -> torch.Tensor:
    logits = torch.full((len(response), vocab_size), POINT_MASS_LOGIT)
    logits[torch.arange(len(response)), torch.tensor(response)] = 0.0
    return logits


def save_examples(examples: list[TeacherExample], path: Path, key: str) -> None:
    """The teacher's output for reuse across runs (loss sweeps); refusals are stored without their point masses."""
    from safetensors.torch import save_file

    meta = [{"prompt": ex.prompt, "flagged": ex.flagged, "prompt_ids": ex.prompt_ids, "response_ids": ex.response_ids}
            for ex in examples]
    tensors = {f"{name}.{i}": t for i, ex in enumerate(examples) if not ex.flagged
               for name, t in (("logits", ex.logits), ("ids", ex.token_ids))}
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
                                            *((None, None) if m["flagged"] else
                                              (f.get_tensor(f"logits.{i}"), f.get_tensor(f"ids.{i}"))))
                for i, m in enumerate(json.loads(meta["examples"]))}


def teacher_examples(base: BaseModel, guard, prompts: list[str], max_response_tokens: int,
                     refusal: str = DEFAULT_REFUSAL, chunk: int = 64) -> list[TeacherExample]:
    """The dual system's reply to each prompt: the fixed refusal when the guard flags it, else the base model's
    greedy reply with the distributions that chose it (their top tokens; batched, `chunk` prompts' full logits in
    memory at a time; left padding changes no reply)."""
    tok, stop = base.tokenizer, eos_ids(base)
    refusal_ids = tok(refusal, add_special_tokens=False)["input_ids"][:max_response_tokens - 1] + [stop[0]]
    ids = [chat_ids(tok, p) for p in prompts]
    flags = guard.flags(prompts)
    answered = [i for i, flagged in enumerate(flags) if not flagged]
    replies = {}
    for start in tqdm(range(0, len(answered), chunk), desc=f"teacher ({len(answered)} replies)", unit="chunk",
                      disable=not answered):
        part = answered[start:start + chunk]
        for n, reply in zip(part, greedy_batch(base.model, [ids[i] for i in part], max_response_tokens, set(stop),
                                               keep_logits=True)):
            replies[n] = (reply.tokens, *top_k(reply.logits))
    return [TeacherExample(p, True, i, refusal_ids, None) if flagged else TeacherExample(p, False, i, *replies[n])
            for n, (p, i, flagged) in enumerate(zip(prompts, ids, flags))]
