"""Keep training and held-out prompts apart.

    python scripts/data/check_overlap.py CANDIDATES.jsonl KEPT.jsonl
    python scripts/data/check_overlap.py --held-out CANDIDATES.jsonl KEPT.jsonl

A training candidate goes when it shares a run of four words holding two content words, or two content words that
are a third of its own, with any prompt of the held-out sets (HarmBench, the template benign set, the natural benign set, the over-refusal set, the held-out
pairs), or when it uses one of the held-out pairs' unsafe words: the rule the screened training files were held to
(README.md). With --held-out, the candidates are held-out ones, checked against every training file both ways: a
candidate goes when it echoes a training prompt or a training prompt echoes it. In a pair file, a pair goes when
either member does. Prints each dropped prompt with the prompt it
echoes.
"""
import json
import re
import sys
from pathlib import Path

from softfold.data.prompt_files import read_pairs, read_prompt_files, word_pattern
from softfold.data.shipped import HELD_OUT, PAIRS_EVAL, PROMPT_SETS

STOP = set("""a an the and or but if of to in on at by for with from as is are was were be been being do does did i me my
you your we our he she it its they them their this that these those what which who whom how why when where can could
should would will shall may might must not no so than then there here about into out up down over under again some any
all each more most other such only own same too very just don t s get got make have has had one
write give tell explain describe list show way best someone people thing things like want need know
without while after before off also even still ever much many just really his him her hers she's he's it's i'm i've
i'd i'll you're that's there's what's don't can't won't isn't doesn't shouldn't getting safest easiest fastest
quickest simplest trick tips difference between lol ugh omg tbh kinda gonna wanna honestly literally haha okay yeah""".split())
# the last lines: the words of a request's form ("Write ...", "the best way to ...", "what's the difference
# between ...", chit-chat fillers), shared by prompts on any topic


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def content(text: str) -> set[str]:
    return {w for w in words(text) if w not in STOP and len(w) > 2}


def runs(text: str, n: int = 4) -> set[tuple[str, ...]]:
    """The runs of n words with two content words at least: "how do I fix" is a form any prompt may share."""
    w = words(text)
    runs = (tuple(w[i:i + n]) for i in range(len(w) - n + 1))
    return {r for r in runs if sum(x not in STOP and len(x) > 2 for x in r) >= 2}


Signature = tuple[str, set[str], set[tuple[str, ...]]]  # a prompt, its content words, its 4-word runs


class Signatures(list):
    """Prompts' signatures, indexed by content word and run: a prompt is checked only against those it shares one
    with (the rule needs two shared words or a shared run), not against all of them."""

    def __init__(self, items: list[Signature]):
        super().__init__(items)
        self.by_key: dict = {}
        for i, (_, words_, runs_) in enumerate(items):
            for key in words_ | runs_:
                self.by_key.setdefault(key, []).append(i)

    def near(self, words_: set[str], runs_: set) -> list[Signature]:
        return [self[i] for i in sorted({i for key in words_ | runs_ for i in self.by_key.get(key, ())})]


def signatures(prompts: list[str]) -> Signatures:
    return Signatures([(p, content(p), runs(p)) for p in prompts])


def held_out_signatures() -> Signatures:
    return signatures(read_prompt_files(HELD_OUT))


def training_files() -> tuple[Path, ...]:
    """Every shipped prompt file that is not held out."""
    held = {Path(p).name for p in HELD_OUT}
    return tuple(sorted(p for p in PROMPT_SETS.iterdir() if p.suffix in (".txt", ".jsonl") and p.name not in held))


def held_out_words() -> re.Pattern:
    """The held-out pairs' unsafe words, which no training prompt may use."""
    return word_pattern({pair.word for pair in read_pairs(PAIRS_EVAL)})


def echo(prompt: str, others: list[Signature]) -> str | None:
    """The prompt of `others` this one is too close to, or None."""
    mine, my_runs = content(prompt), runs(prompt)
    for other, other_content, other_runs in (others.near(mine, my_runs) if isinstance(others, Signatures) else others):
        shared = len(mine & other_content)
        if my_runs & other_runs or (shared >= 2 and shared * 3 >= len(mine)):
            return other
    return None


def echoed_by(prompt: str, others: Signatures) -> str | None:
    """The prompt of `others` that is too close to this one (the rule the other way round), or None."""
    mine = [(prompt, content(prompt), runs(prompt))]
    return next((other for other, _, _ in others.near(mine[0][1], mine[0][2]) if echo(other, mine) is not None), None)


def why_dropped(record: dict, others: list[Signature], banned: re.Pattern | None, both_ways: bool) -> str | None:
    for prompt in [record[k] for k in ("prompt", "safe", "unsafe") if k in record]:
        if banned is not None and (word := banned.search(prompt)):
            return f"{prompt!r} uses held-out word {word.group(0)!r}"
        if (other := echo(prompt, others)) is not None:
            return f"{prompt!r} echoes {other!r}"
        if both_ways and (other := echoed_by(prompt, others)) is not None:
            return f"{prompt!r} is echoed by {other!r}"
    return None


def main(argv: list[str]) -> None:
    held_out_mode = argv[0] == "--held-out"
    src, dst = map(Path, argv[1:] if held_out_mode else argv)
    if held_out_mode:
        others, banned = signatures(read_prompt_files(training_files())), None
    else:
        others, banned = held_out_signatures(), held_out_words()
    lines, kept = src.read_text(encoding="utf-8").splitlines(), []
    for line in lines:
        why = why_dropped(json.loads(line), others, banned, held_out_mode)
        if why is None:
            kept.append(line)
        else:
            print(f"dropped: {why}")
    dst.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    print(f"kept {len(kept)} of {len(lines)}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
