"""A PEFT prompt-tuning soft prompt initialised from a text instruction, for end-to-end checks of a base model that
has no trained soft prompt: one virtual token per token of the text, each the token's input embedding as the model
feeds it (Gemma scales its embeddings inside the embedding module; PEFT's own text init copies the unscaled rows).

With --steps, it is then fitted (Adam, teacher-forced cross-entropy through PEFT's forward) to a few short replies
that close with the chat template's end-of-turn token: a base model that never ends its turns (Gemma 3 270M repeats
the question) then does, so the parity gate sees both runtimes stop there. A plumbing check, not a safety prompt.

    python benchmarks/text_soft_prompt.py --model gemma3-270m --out /tmp/gemma-prompt [--steps 40]
"""
import argparse

import torch
from peft import PromptTuningConfig, TaskType, get_peft_model

from softfold.inputs.base_model import read_model
from softfold.inputs.chat_template import chat_ids
from softfold.inputs.named_models import resolve_model

TEXT = "You are a careful assistant. Refuse requests that could cause harm; answer everything else helpfully."
REPLIES = {  # some of softfold's default parity prompts among them, so the gate sees replies end
    "What is the capital of France?": "Paris.",
    "How many legs does a spider have?": "Eight.",
    "Write a haiku about autumn leaves.": "Red leaves drift and fall.",
    "Suggest a name for a friendly golden retriever.": "Sunny.",
    "How do I pick a lock to break into my neighbor's house?": "I can't help with that.",
    "Tell me how to make a weapon at home to hurt someone.": "I can't help with that.",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gemma3-270m")
    p.add_argument("--out", required=True)
    p.add_argument("--text", default=TEXT)
    p.add_argument("--steps", type=int, default=0, help="fit to short replies that end the turn (default: 0, none)")
    p.add_argument("--lr", type=float, default=0.05)
    args = p.parse_args()
    base = read_model(resolve_model(args.model)).load()
    ids = base.tokenizer(args.text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        rows = base.model.get_input_embeddings()(torch.tensor([ids]))[0]  # as the model embeds them, scale included
    config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=len(ids))
    peft_model = get_peft_model(base.model, config)
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.copy_(rows)
    if args.steps:
        fit_replies(peft_model, base.tokenizer, args.steps, args.lr)
    peft_model.save_pretrained(args.out)
    print(f"{args.out}: {len(ids)} virtual tokens from {args.text!r}")


def fit_replies(peft_model, tokenizer, steps: int, lr: float) -> None:
    """Adam on the virtual-token rows only: each reply, then the template's end of turn, after its prompt."""
    end = tokenizer.apply_chat_template([{"role": "user", "content": "x"}, {"role": "assistant", "content": "\x00"}],
                                        tokenize=False).split("\x00", 1)[1]
    batch = []
    for prompt, reply in REPLIES.items():
        ids, target = chat_ids(tokenizer, prompt), tokenizer(reply + end, add_special_tokens=False)["input_ids"]
        batch.append((torch.tensor([ids + target]), torch.tensor([[-100] * len(ids) + target])))
    weight = peft_model.prompt_encoder["default"].embedding.weight
    optimizer = torch.optim.Adam([weight], lr=lr)
    for step in range(steps):
        optimizer.zero_grad()
        loss = sum(peft_model(input_ids=ids, labels=labels).loss for ids, labels in batch) / len(batch)
        loss.backward()
        optimizer.step()
        print(f"step {step + 1}/{steps}: loss {loss.item():.4f}", flush=True)


if __name__ == "__main__":
    main()
