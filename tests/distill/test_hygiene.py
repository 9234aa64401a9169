"""Training-data hygiene: a held-out prompt is never trained on; the loss curve's slice is every k-th prompt."""
import pytest

from softfold.distill.hygiene import check_disjoint, split_held_out
from softfold.errors import UserError


def test_a_training_prompt_that_is_held_out_is_refused():
    check_disjoint(["a", "b"], ["c"], "HarmBench")
    with pytest.raises(UserError, match=r"1 training prompt\(s\) also appear in the HarmBench set, e.g. 'b'"):
        check_disjoint(["a", "b"], ["b", "c"], "HarmBench")


def test_every_tenth_prompt_is_watched_the_same_way_every_run():
    train, watch = split_held_out(list(range(25)))
    assert watch == [0, 10, 20] and train == [i for i in range(25) if i % 10]
    assert split_held_out(list(range(4)), fraction=0.9) == ([1, 3], [0, 2])  # at least every second
