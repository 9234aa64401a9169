"""Calibration prompt sets: spread over every template block of every training file, never the evaluation sets."""
from softfold.calibrate.prompts import calibration_set, prefix_calibration_prompts
from softfold.data.prompt_files import read_prompt_files, read_prompts
from softfold.data.shipped import BENIGN_TRAIN, HARMFUL_TRAIN, HELD_OUT


def test_prefix_calibration_prompts_reach_the_end_of_every_file():
    per_file = 160  # over half of the shortest file (258): a plain prefix of it would stop at prompt 160
    prompts = prefix_calibration_prompts(per_file)
    assert len(prompts) == len(set(prompts)) == len(HARMFUL_TRAIN + BENIGN_TRAIN) * per_file
    for i, path in enumerate(HARMFUL_TRAIN + BENIGN_TRAIN):
        lines = read_prompt_files((path,))
        chosen = prompts[i * per_file:(i + 1) * per_file]
        assert set(chosen) <= set(lines)
        assert lines.index(chosen[-1]) >= len(lines) - len(lines) // per_file - 1  # the last template block too


def test_calibration_sets_are_disjoint_from_the_evaluation_sets():
    held_out = {p for path in HELD_OUT for p in read_prompts(path)}
    harmful, benign = calibration_set(per_class=2000)  # more than the files hold: every prompt, once
    assert len(harmful) == len(read_prompt_files(HARMFUL_TRAIN)) and len(benign) == len(read_prompt_files(BENIGN_TRAIN))
    assert not (set(harmful) | set(benign) | set(prefix_calibration_prompts(64))) & held_out
