"""Prompt files, read: one prompt per line (.txt), JSON lines with a "prompt" field (.jsonl), or minimal-pair files
(.jsonl of safe / unsafe twins); a one-line UserError for a file that is none of them."""
import json
import re
from dataclasses import dataclass
from pathlib import Path

from softfold.errors import UserError

PAIR_KINDS = ("homonym", "figurative", "safe-target", "safe-context", "definition", "history", "privacy",
              "discrimination-nonsense", "safety", "chit-chat")


@dataclass(frozen=True)
class Pair:
    """A minimal pair: `safe` borrows an unsafe `word` that its twin `unsafe` uses for harm, in the same `form`.
    `kind` says how the safe member borrows it (PAIR_KINDS); `aspect` narrows privacy (public or fictional) and
    safety (medical or security)."""
    safe: str
    unsafe: str
    word: str
    kind: str
    aspect: str
    form: str


def read_pairs(path: str | Path) -> list[Pair]:
    """A pair file: JSON lines {"safe", "unsafe", "word", "kind", "aspect", "form"}."""
    path = Path(path)
    records = _json_lines(path)
    try:
        pairs = [Pair(r["safe"].strip(), r["unsafe"].strip(), r["word"], r["kind"], r.get("aspect", ""), r["form"])
                 for r in records]
    except (KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: every line of a pair file must be a JSON object with \"safe\", \"unsafe\", "
                        f"\"word\", \"kind\" and \"form\" strings (missing {e})") from None
    unknown = sorted({p.kind for p in pairs} - set(PAIR_KINDS))
    if unknown:
        raise UserError(f"{path}: unknown pair kind(s) {unknown}: use one of {', '.join(PAIR_KINDS)}")
    return pairs


def is_pair_file(path: str | Path) -> bool:
    """Whether a .jsonl file holds minimal pairs (its first record has "safe" and "unsafe")."""
    path = Path(path)
    if path.suffix != ".jsonl" or not path.is_file():
        return False
    first = next((line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()), "{}")
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(record, dict) and "safe" in record and "unsafe" in record


def word_pattern(words) -> re.Pattern:
    """Matches any of `words` (pair trigger words) as a whole word, plain or inflected: "kill" finds "killing" and
    "killers", "strangle" finds "strangling", "rob" finds "robbed" but not "robot"."""
    forms = []
    for word in sorted({w.lower().strip() for w in words if w.strip()}, key=len, reverse=True):
        if word.endswith("e") and len(word) > 3:  # strangle: strangles, strangled, strangler, strangling
            forms.append(f"{re.escape(word)}(?:s|d|r|rs)?|{re.escape(word[:-1])}(?:ing|ings)")
        else:  # kill: kills, killed, killer, killing; rob: robbed, robbing
            forms.append(f"{re.escape(word)}(?:[a-z]?(?:s|es|ed|d|ing|ings|er|ers))?")
    return re.compile(r"\b(?:" + "|".join(forms) + r")\b", re.IGNORECASE)


def _json_lines(path: Path) -> list[dict]:
    lines = _lines(path)
    try:
        return [json.loads(line) for line in lines]
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: every line must be a JSON object ({e})") from None


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise UserError(f"prompt file not found: {path}: pass a .txt (one prompt per line) or .jsonl file")
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as e:
        raise UserError(f"prompt file {path} is not UTF-8 text ({e.reason} at byte {e.start}): save it as UTF-8") from None
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise UserError(f"prompt file {path} holds no prompts")
    return lines


def read_prompt_records(path: str | Path) -> list[dict]:
    """One prompt per line (.txt; blank lines and lines starting with '#' skipped) as {"prompt": line}, or JSON
    lines with a "prompt" field and any others ("form", ...) (.jsonl). A pair file gives both members of each pair,
    safe first, with "label" (benign, harmful), "kind" and "form"."""
    path = Path(path)
    if is_pair_file(path):
        return [{"prompt": prompt, "label": label, "kind": p.kind, "form": p.form}
                for p in read_pairs(path) for prompt, label in ((p.safe, "benign"), (p.unsafe, "harmful"))]
    lines = _lines(path)
    if path.suffix != ".jsonl":
        return [{"prompt": line} for line in lines]
    try:
        records = [json.loads(line) for line in lines]
        for record in records:
            record["prompt"] = record["prompt"].strip()
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: every line must be a JSON object with a \"prompt\" string ({e})") from None
    return records


def read_prompts(path: str | Path) -> list[str]:
    """The prompts of a prompt file (see `read_prompt_records`)."""
    return [record["prompt"] for record in read_prompt_records(path)]


def read_prompt_files(paths: tuple[Path, ...]) -> list[str]:
    """The prompts of several files, in order, duplicates dropped."""
    return list(dict.fromkeys(p for path in paths for p in read_prompts(path)))
