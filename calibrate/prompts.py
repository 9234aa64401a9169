"""The calibration prompts: which prompts of the shipped sets (softfold.data) the calibrating recipes and
`softfold sensitivity` / `calibrate-prefix` see. Drawn from the distillation *training* files only, never the
held-out evaluation sets.
"""
from softfold.data.prompt_files import read_prompt_files
from softfold.data.shipped import BENIGN_TRAIN, HARMFUL_TRAIN


def calibration_set(per_class: int = 16) -> tuple[list[str], list[str]]:
    """(harmful, benign) chat prompts for the recipes that calibrate and for `softfold sensitivity`.

    Drawn evenly from the distillation *training* files (never the held-out evaluation sets), so the
    calibration sees the behavior the soft prompt was trained for on both sides of the decision.
    """
    return _spread(read_prompt_files(HARMFUL_TRAIN), per_class), _spread(read_prompt_files(BENIGN_TRAIN), per_class)


def _spread(prompts: list[str], n: int) -> list[str]:
    """`n` prompts evenly spaced through `prompts` (in file order: deterministic). Files list their templates
    in blocks, so a plain prefix of a file would leave whole templates out."""
    n = min(n, len(prompts))
    return [prompts[i * len(prompts) // n] for i in range(n)]


def prefix_calibration_prompts(per_file: int) -> list[str]:
    """Prompts for `softfold calibrate-prefix`: `per_file` spread over each distillation training file
    (harmful and benign, questions and imperatives), never the held-out evaluation sets."""
    return [p for path in HARMFUL_TRAIN + BENIGN_TRAIN for p in _spread(read_prompt_files((path,)), per_file)]
