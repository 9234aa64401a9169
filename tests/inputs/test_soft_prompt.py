"""The soft prompt: a PEFT prompt-tuning directory checked whole, in seconds, before any model loads."""
import pytest
import torch
from tiny import write_soft_prompt_files

from softfold.errors import UserError
from softfold.inputs.soft_prompt import load_soft_prompt, tensor_sha256
from softfold.inputs.trained_for import TrainedFor


def test_a_prompt_tuning_directory_reads_as_its_embeddings_and_what_it_was_trained_for(tmp_path):
    rows = torch.randn(4, 64)
    prompt = load_soft_prompt(write_soft_prompt_files(tmp_path / "p", rows, num_layers=2), 64)
    assert prompt.num_virtual_tokens == 4 and torch.equal(prompt.embeddings, rows)
    assert prompt.sha256 == tensor_sha256(rows) and prompt.trained_for == TrainedFor("llama", 2, None)


@pytest.mark.parametrize("rows,config,hidden,needle", [
    (torch.zeros(4, 64), {"peft_type": "LORA"}, 64, "is a LORA adapter, expected PROMPT_TUNING"),
    (torch.zeros(4, 64), {"num_virtual_tokens": 3}, 64, r"shape \(4, 64\), expected \[num_virtual_tokens=3"),
    (torch.zeros(4, 64), {"token_dim": 32}, 64, "token_dim=32 but prompt_embeddings has 64 columns"),
    (torch.zeros(4, 64), {}, 96, "hidden size 64 but the model's is 96"),
    (torch.full((4, 64), float("nan")), {}, 64, "contains NaN or Inf"),
])
def test_a_broken_soft_prompt_is_one_line_naming_it(tmp_path, rows, config, hidden, needle):
    with pytest.raises(UserError, match=needle):
        load_soft_prompt(write_soft_prompt_files(tmp_path / "p", rows, **config), hidden)


def test_a_directory_without_its_files_is_refused(tmp_path):
    with pytest.raises(UserError, match="soft prompt not found"):
        load_soft_prompt(tmp_path / "absent", 64)
    (tmp_path / "p").mkdir()
    with pytest.raises(UserError, match="has no adapter_model.safetensors"):
        load_soft_prompt(tmp_path / "p", 64)
