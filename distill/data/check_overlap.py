"""Drop candidate training prompts too close to a held-out one.

    python distill/data/check_overlap.py CANDIDATES.jsonl KEPT.jsonl

A candidate goes when it shares any run of four words, or a third of its content words, with any prompt of the
held-out sets (HarmBench, the template benign set, the natural benign set, the over-refusal set): the rule the
natural training files were held to (README.md). Prints each dropped prompt with the held-out one it echoes.
"""
import json
import re
import sys
from pathlib import Path

from softfold.datasets import HELD_OUT, read_prompt_files

STOP = set("""a an the and or but if of to in on at by for with from as is are was were be been being do does did i me my
you your we our he she it its they them their this that these those what which who whom how why when where can could
should would will shall may might must not no so than then there here about into out up down over under again some any
all each more most other such only own same too very just don t s get got make have has had one
write give tell explain describe list show way best someone people thing things like want need know""".split())
# the last line: the words of a request's form ("Write ...", "the best way to ..."), shared by prompts on any topic


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def content(text: str) -> set[str]:
    return {w for w in words(text) if w not in STOP and len(w) > 2}


def runs(text: str, n: int = 4) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


Signature = tuple[str, set[str], set[tuple[str, ...]]]  # a held-out prompt, its content words, its 4-word runs


def held_out_signatures() -> list[Signature]:
    return [(p, content(p), runs(p)) for p in read_prompt_files(HELD_OUT)]


def echo(prompt: str, held_out: list[Signature]) -> str | None:
    """The held-out prompt this one is too close to, or None."""
    mine, my_runs = content(prompt), runs(prompt)
    for other, other_content, other_runs in held_out:
        if my_runs & other_runs or (mine and len(mine & other_content) * 3 >= len(mine)):
            return other
    return None


def main(src: Path, dst: Path) -> None:
    held_out, kept = held_out_signatures(), []
    lines = src.read_text(encoding="utf-8").splitlines()
    for line in lines:
        record = json.loads(line)
        other = echo(record["prompt"], held_out)
        if other is None:
            kept.append(line)
        else:
            print(f"dropped: {record['prompt']!r}  (echoes {other!r})")
    dst.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    print(f"kept {len(kept)} of {len(lines)}", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
