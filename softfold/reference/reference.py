"""The reference (docs/gate.md): the base model in fp32 eager PyTorch + the PEFT soft prompt, a PEFT LoRA adapter
(unmerged) when the bundle merged one, and steering vectors (added by forward hooks after their blocks) when the
bundle folded them."""
from dataclasses import dataclass

import torch

from softfold.inputs.base_model import BaseModel, eos_ids
from softfold.inputs.chat_template import chat_ids
from softfold.inputs.control_vector import SteeringVectors, add_steering
from softfold.inputs.lora import LoraAdapter, with_lora
from softfold.inputs.soft_prompt import SoftPrompt
from softfold.reference.greedy import Continuation, greedy_batch, prefix_cache


@dataclass(frozen=True)
class RefSample:
    prompt: str
    prompt_ids: list[int]
    continuation: list[int]  # greedy new tokens, ending with an EOS id if one was produced
    logits: torch.Tensor  # [len(prompt_ids) + len(continuation), vocab], at every user position


class Reference:
    """`adapter`: its LoRA layers go into base.model (in place), computed unmerged as PEFT computes them;
    `steering`: forward hooks on base.model's blocks (for the reference's lifetime) add each vector to its block's
    output, as llama.cpp does; the soft prompt's PEFT model wraps that."""

    def __init__(self, base: BaseModel, soft_prompt: SoftPrompt | None = None, adapter: LoraAdapter | None = None,
                 steering: SteeringVectors | None = None):
        from peft import PeftModel  # peft loads with the reference, not with every import of softfold.reference

        self.tokenizer = base.tokenizer
        self.n_virtual = 0
        self.model = base.model if adapter is None else with_lora(base.model, adapter)
        if steering is not None:
            add_steering(self.model, steering.vectors)
        if soft_prompt is not None:
            self.model = PeftModel.from_pretrained(self.model, str(soft_prompt.path)).eval()
            self.n_virtual = self.model.peft_config["default"].num_virtual_tokens
        self.eos_ids = eos_ids(base)

    def greedy(self, ids: list[int], max_new_tokens: int) -> list[int]:
        """Greedy continuation of `ids` with the soft prompt in front, stopping after an EOS id."""
        return self.greedy_with_first_logits(ids, max_new_tokens)[0]

    @torch.no_grad()
    def greedy_with_first_logits(self, ids: list[int], max_new_tokens: int,
                                 prefix_cache=None) -> tuple[list[int], torch.Tensor]:
        """The greedy continuation and the next-token logits after the prompt (the reply's first decision).
        `prefix_cache`: a fresh cache already holding the soft prompt's K/V, used in place of computing them
        (fp32 K/V while the model computes quantized, as a prefix-kv bundle does).

        PeftModel.generate (peft 0.21.2, transformers 5.24) rebuilds positions wrongly once the KV
        cache holds the virtual tokens, so only its first token is right. This loop feeds the same
        embeddings to the base model and lets its cache count positions; tests check it against
        PeftModel.generate(use_cache=False).
        """
        base = self.model.get_base_model() if self.n_virtual else self.model
        if prefix_cache is not None:
            out = base(input_ids=torch.tensor([ids]), past_key_values=prefix_cache, use_cache=True)
        else:
            embeds = base.get_input_embeddings()(torch.tensor([ids]))
            if self.n_virtual:
                prompt = self.model.get_prompt(batch_size=1).to(embeds.dtype)
                embeds = torch.cat([prompt, embeds], dim=1)
            out = base(inputs_embeds=embeds, use_cache=True)
        first = out.logits[0, -1].float()
        new: list[int] = []
        while len(new) < max_new_tokens:
            new.append(out.logits[0, -1].argmax().item())
            if new[-1] in self.eos_ids:
                break
            out = base(input_ids=torch.tensor([[new[-1]]]), past_key_values=out.past_key_values, use_cache=True)
        return new, first

    def greedy_many(self, prompts: list[list[int]], max_new_tokens: int, batch_size: int = 16,
                    desc: str | None = None) -> list[Continuation]:
        """`greedy` for many prompts, batched: the soft prompt's K/V are computed once and shared."""
        base = self.model.get_base_model() if self.n_virtual else self.model
        kv = prefix_cache(base, self.model.get_prompt(batch_size=1)[0]) if self.n_virtual else None
        return greedy_batch(base, prompts, max_new_tokens, set(self.eos_ids), kv=kv, batch_size=batch_size, desc=desc)

    def prompt_ids(self, prompt: str) -> list[int]:
        return chat_ids(self.tokenizer, prompt)

    @torch.no_grad()
    def sample(self, prompt: str, max_new_tokens: int) -> RefSample:
        ids = self.prompt_ids(prompt)
        continuation = self.greedy(ids, max_new_tokens)
        full = torch.tensor([ids + continuation])
        logits = self.model(input_ids=full, attention_mask=torch.ones_like(full)).logits[0, self.n_virtual:]
        # a copy: a view would keep the virtual tokens' rows alive with it (an export holds ten samples while it lowers)
        return RefSample(prompt, ids, continuation, logits.float().clone())


