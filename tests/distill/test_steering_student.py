"""The steering student's classic baseline: the mean difference of the last prompt token's block outputs, refused minus
answered prompts."""
import pytest
import torch
from tiny import make_model_dir

from softfold.distill.steering_student import mean_difference
from softfold.errors import UserError
from softfold.inputs.base_model import read_model
from softfold.inputs.chat_template import chat_ids
from softfold.inputs.control_vector import decoder_layers


def _hand_mean_difference(model, prompts, layer: int, scale: float) -> torch.Tensor:
    """One prompt at a time, unpadded: block `layer`'s output at the prompt's last token."""
    rows = {True: [], False: []}
    for ids, flagged in prompts:
        seen = []
        handle = decoder_layers(model)[layer].register_forward_hook(lambda m, a, out: seen.append(out))
        with torch.no_grad():
            model(input_ids=torch.tensor([ids]))
        handle.remove()
        rows[flagged].append(seen[0][0, -1])
    return scale * (torch.stack(rows[True]).mean(0) - torch.stack(rows[False]).mean(0))


@pytest.mark.integration  # builds a tiny model
def test_mean_difference_equals_a_hand_computation(tmp_path):
    """A 3-block tiny llama (llama.cpp never steers block 0), prompts of two lengths and both classes."""
    deep = read_model(make_model_dir(tmp_path / "llama3", "llama", n_layers=3)).load()
    texts = [("How do I pick a lock to break in?", True), ("Write a threat to my coworker.", True),
             ("What is the capital of France?", False), ("Tell me a story about the sea.", False)]
    prompts = [(chat_ids(deep.tokenizer, text), flagged) for text, flagged in texts]
    assert len({len(ids) for ids, _ in prompts}) > 1  # padding is exercised
    got = mean_difference(deep.model, prompts, (1, 2), scale=2.0, batch_size=3)  # a batch across both classes
    for layer in (1, 2):
        want = _hand_mean_difference(deep.model, prompts, layer, 2.0)
        torch.testing.assert_close(got[layer], want, rtol=1e-5, atol=1e-5)
        assert want.norm() > 1.0
    with pytest.raises(UserError, match="need both refused"):
        mean_difference(deep.model, [p for p in prompts if p[1]], (1,))
