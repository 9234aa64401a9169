"""A PEFT prompt-tuning soft prompt initialised from a text instruction, for end-to-end checks of a base model that
has no trained soft prompt: one virtual token per token of the text, each the token's input embedding as the model
feeds it (Gemma scales its embeddings inside the embedding module; PEFT's own text init copies the unscaled rows).
Untrained: it acts like an instruction placed before the chat, nothing more.

    python benchmarks/text_soft_prompt.py --model gemma3-270m --out /tmp/gemma-prompt
"""
import argparse

import torch
from peft import PromptTuningConfig, TaskType, get_peft_model

from softfold.load import load_base
from softfold.models import resolve_model

TEXT = "You are a careful assistant. Refuse requests that could cause harm; answer everything else helpfully."


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gemma3-270m")
    p.add_argument("--out", required=True)
    p.add_argument("--text", default=TEXT)
    args = p.parse_args()
    base = load_base(resolve_model(args.model))
    ids = base.tokenizer(args.text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        rows = base.model.get_input_embeddings()(torch.tensor([ids]))[0]  # as the model embeds them, scale included
    peft_model = get_peft_model(base.model, PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=len(ids)))
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.copy_(rows)
    peft_model.save_pretrained(args.out)
    print(f"{args.out}: {len(ids)} virtual tokens from {args.text!r}")


if __name__ == "__main__":
    main()
