"""`softfold distill`'s flags: a method's own flags refused for another method; minimal pairs a quarter of each
batch unless said; training needs harmful and benign prompts."""
import pytest

from softfold.cli.distill import method_settings, pairs_per_batch
from softfold.cli.main import build_parser, main
from softfold.errors import UserError


def parse(*flags: str):
    return build_parser().parse_args(["distill", "--out", "o", *flags])


def test_a_methods_own_flags_belong_to_it():
    assert method_settings(parse("--method", "lora", "--lora-rank", "4")) == {"lora_rank": 4}
    assert method_settings(parse("--steering-layers", "1", "2", "--method", "steering")) == {"steering_layers": (1, 2)}
    with pytest.raises(UserError, match="--method prompt takes no --lora-rank .--method lora does."):
        method_settings(parse("--lora-rank", "4"))


def test_pairs_take_a_quarter_of_each_batch_unless_said():
    assert pairs_per_batch(parse("--pairs", "p.jsonl", "--batch-size", "16")) == 4
    assert pairs_per_batch(parse("--pairs", "p.jsonl", "--pairs-per-batch", "2")) == 2
    assert pairs_per_batch(parse()) == 0
    with pytest.raises(UserError, match="--pairs-per-batch takes --pairs FILE"):
        pairs_per_batch(parse("--pairs-per-batch", "2"))


def test_training_without_harmful_prompts_is_refused(tmp_path, capsys):
    benign = tmp_path / "benign.txt"
    benign.write_text("What is the capital of France?\n")
    assert main(["distill", "--out", str(tmp_path / "out"), "--harmful", "--benign", str(benign)]) == 2
    assert "distill needs harmful and benign training prompts" in capsys.readouterr().err
