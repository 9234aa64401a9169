"""The steering student (`softfold distill --method steering`): the frozen LLM with one learned vector per chosen layer
added to the residual stream after that block, as llama.cpp adds a control vector (softfold/inputs/control_vector.py);
and the classic untrained baseline, the mean difference of residual activations between refused and answered prompts.
"""
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from softfold.errors import UserError
from softfold.inputs.control_vector import (CONTROL_VECTOR_FILE, decoder_layers, llama_cpp_architecture,
                                            save_control_vector, steered)


class SteeringStudent(nn.Module):
    """The LLM (frozen) and its steering vectors, the only trainable parameters (`vectors.N`, N the layer). The
    vectors act inside `active()` only (its forward and the training loss enter it), so the LLM it wraps, the
    teacher's, computes as before everywhere else: no copy of the weights, unlike LoRA's."""

    def __init__(self, lm: nn.Module, vectors: dict[int, torch.Tensor]):
        super().__init__()
        self.lm = lm.requires_grad_(False)
        self.vectors = nn.ParameterDict({str(layer): nn.Parameter(v.detach().float().clone())
                                         for layer, v in sorted(vectors.items())})

    def steering(self) -> dict[int, torch.Tensor]:
        return {int(layer): v for layer, v in self.vectors.items()}

    def active(self):
        return steered(self.lm, self.steering())

    def forward(self, **inputs):
        with self.active():
            return self.lm(**inputs)

    def get_base_model(self) -> nn.Module:
        return self.lm

    def get_input_embeddings(self) -> nn.Module:
        return self.lm.get_input_embeddings()

    def save_pretrained(self, out: Path) -> None:
        """The vectors as llama.cpp's control-vector GGUF, OUT/control_vector.gguf."""
        Path(out).mkdir(parents=True, exist_ok=True)
        save_control_vector(Path(out) / CONTROL_VECTOR_FILE, self.steering(), llama_cpp_architecture(self.lm.config))


@torch.no_grad()
def mean_difference(model: nn.Module, prompts: list[tuple[list[int], bool]], layers: tuple[int, ...],
                    scale: float = 1.0, batch_size: int = 16) -> dict[int, torch.Tensor]:
    """Per layer N, the mean output of block N at each prompt's last token over the flagged (refused) prompts minus
    that over the others, times `scale`: the classic steering baseline (difference of means, as Rimsky et al.'s
    contrastive activation addition and Arditi et al.'s refusal direction take it).

    At the last prompt token, not averaged over the prompt: that position (the chat template's generation prefix,
    the same tokens in every prompt) is where the reply's first token, the refuse-or-answer decision, is read
    out, and both classes hold the same token there, so the difference is the prompts' content, not token identity.
    `prompts`: (chat-formatted token ids, flagged), as the teacher saw them.
    """
    counts = {flag: sum(f == flag for _, f in prompts) for flag in (True, False)}
    if not all(counts.values()):
        raise UserError("the mean-difference steering vectors need both refused (flagged) and answered training "
                        "prompts")
    sums = {flag: {layer: torch.zeros(model.config.hidden_size) for layer in layers} for flag in (True, False)}
    blocks, captured = decoder_layers(model), {}
    handles = [blocks[layer].register_forward_hook(_capture(captured, layer)) for layer in layers]
    try:
        for start in tqdm(range(0, len(prompts), batch_size), desc="mean difference", unit="batch", leave=False):
            batch = prompts[start:start + batch_size]
            lengths = [len(ids) for ids, _ in batch]
            width = max(lengths)
            model(input_ids=torch.tensor([ids + [0] * (width - len(ids)) for ids, _ in batch]),  # right-padded
                  attention_mask=torch.tensor([[1] * n + [0] * (width - n) for n in lengths]),
                  logits_to_keep=1)  # the blocks' outputs are what counts: skip the LM head but for one position
            last = torch.tensor(lengths) - 1
            for layer in layers:
                at_last = captured[layer][torch.arange(len(batch)), last].float()
                for row, (_, flagged) in zip(at_last, batch):
                    sums[flagged][layer] += row
    finally:
        for handle in handles:
            handle.remove()
    return {layer: scale * (sums[True][layer] / counts[True] - sums[False][layer] / counts[False]) for layer in layers}


def _capture(captured: dict, layer: int):
    def hook(module, args, output):
        captured[layer] = output[0] if isinstance(output, tuple) else output

    return hook
