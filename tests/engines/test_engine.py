"""The engines behind the gate: a virtual-token bundle seen as the reference sees it (every sequence starts with the
N virtual tokens, logits reported for the user positions only)."""
import torch

from softfold.bundle.virtual_tokens import VirtualTokens
from softfold.engines.engine import VirtualTokenEngine


class Recorder:
    """An engine that records what it is asked and answers with one row of logits per position."""

    def __init__(self):
        self.asked = []

    def logits(self, prompt_ids, continuation):
        self.asked.append(prompt_ids)
        return torch.arange(len(prompt_ids) + len(continuation) - 1, dtype=torch.float32)[:, None]

    def reply_logits(self, prompt_ids, continuation):
        self.asked.append(prompt_ids)
        return torch.zeros(len(continuation), 1)

    def greedy(self, chat_text, max_new_tokens):
        return chat_text

    def reply_text(self, ids, tokenizer):
        return "text"


def test_the_virtual_tokens_start_every_sequence_and_their_rows_are_dropped():
    inner = Recorder()
    engine = VirtualTokenEngine(inner, VirtualTokens([100, 101]))
    rows = engine.logits([1, 2, 3], [4, 5])
    assert inner.asked[-1] == [100, 101, 1, 2, 3] and rows[:, 0].tolist() == [2, 3, 4, 5]
    engine.reply_logits([1], [4, 5])
    assert inner.asked[-1] == [100, 101, 1]
    assert engine.greedy("<chat>", 8) == "<|softfold_virtual_0|><|softfold_virtual_1|><chat>"
    assert engine.reply_text([4], None) == "text"
