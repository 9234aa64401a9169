"""Prompt files for distillation and evaluation, and the shipped sets (see data/README.md)."""
import hashlib
from pathlib import Path

from softfold.errors import UserError

DATA = Path(__file__).parent / "data"
HARMFUL_TRAIN = (DATA / "donotanswer_harmful.txt", DATA / "harmful_imperative.txt", DATA / "harmful_natural.jsonl")
BENIGN_TRAIN = (DATA / "benign_train.txt", DATA / "benign_imperative.txt", DATA / "benign_natural.jsonl")
HARMFUL_EVAL = DATA / "harmbench_standard.txt"
BENIGN_EVAL = DATA / "benign_eval.txt"  # the template-made benign set
NATURAL_BENIGN_EVAL = DATA / "natural_benign_eval.jsonl"  # everyday requests, written apart from the training data
OVER_REFUSAL_EVAL = DATA / "overrefusal_eval.jsonl"  # safe prompts that look unsafe
HELD_OUT = (HARMFUL_EVAL, BENIGN_EVAL, NATURAL_BENIGN_EVAL, OVER_REFUSAL_EVAL)
# the trained safety soft prompt for SmolLM2-135M-Instruct (PEFT prompt tuning; command in its sidecar)
SHIPPED_PROMPT = Path(__file__).parent / "prompts" / "smollm2-135m-safety"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_prompt_files(paths: tuple[Path, ...]) -> list[str]:
    """The prompts of several files, in order, duplicates dropped."""
    from softfold.calibrate.prompts import read_prompts

    return list(dict.fromkeys(p for path in paths for p in read_prompts(path)))


def check_disjoint(train: list[str], held_out: list[str], what: str) -> None:
    shared = set(train) & set(held_out)
    if shared:
        raise UserError(f"{len(shared)} training prompt(s) also appear in the {what} set, e.g. "
                        f"{sorted(shared)[0][:60]!r}: held-out evaluation data must never be trained on")


def split_held_out(prompts: list[str], fraction: float = 0.1) -> tuple[list[str], list[str]]:
    """A deterministic held-out slice for the loss curve: every k-th prompt."""
    k = max(round(1 / fraction), 2)
    return [p for i, p in enumerate(prompts) if i % k], [p for i, p in enumerate(prompts) if not i % k]
