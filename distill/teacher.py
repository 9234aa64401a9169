"""The teacher: the dual system (base LLM + guard). Flagged prompts get a fixed refusal, others the LLM's answer.

Its output distribution at each response position is what the student matches: the base model's
next-token distribution on answered prompts, and a point mass on the refusal's tokens otherwise.
"""
from dataclasses import dataclass

import torch

from softfold.load import BaseModel
from softfold.reference import chat_text

DEFAULT_REFUSAL = "I'm sorry, but I can't help with that request."
POINT_MASS_LOGIT = -1e4  # logits of a point mass: 0 on the token, this elsewhere


@dataclass(frozen=True)
class TeacherExample:
    prompt: str
    flagged: bool
    prompt_ids: list[int]
    response_ids: list[int]
    logits: torch.Tensor  # [len(response_ids), vocab]: the teacher's distribution at each response position


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
        ids = tok(chat_text(tok, prompt), add_special_tokens=False)["input_ids"]
        if flagged:
            response = refusal_ids
            logits = torch.full((len(response), model.config.vocab_size), POINT_MASS_LOGIT)
            logits[torch.arange(len(response)), torch.tensor(response)] = 0.0
        else:
            x = torch.tensor([ids])
            full = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_response_tokens,
                                  do_sample=False, eos_token_id=stop, pad_token_id=stop[0])[0]
            response = full[len(ids):].tolist()
            logits = model(input_ids=full.unsqueeze(0)).logits[0, len(ids) - 1:-1].float()
        out.append(TeacherExample(prompt, flagged, ids, response, logits))
    return out
