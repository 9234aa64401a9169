"""The shipped data's hygiene: training and held-out sets disjoint and sized, the screened files clear of every held-out
prompt, minimal pairs of every kind, held-out pairs on other words."""
import re
import sys
from pathlib import Path

from softfold.data.prompt_files import PAIR_KINDS, read_pairs, read_prompt_files, read_prompts, word_pattern
from softfold.data.shipped import (BENIGN_TRAIN, HARMFUL_EVAL, HARMFUL_TRAIN, HELD_OUT, PAIRS_EVAL, PAIRS_TRAIN,
                                   PROMPT_SETS)


def test_shipped_data_is_disjoint_and_sized():
    harmbench = read_prompts(HARMFUL_EVAL)
    assert len(harmbench) == 200
    train = read_prompt_files(HARMFUL_TRAIN) + read_prompt_files(BENIGN_TRAIN)
    assert len(train) == 821 + 469 + 258 + 270 + 316 + 643
    held_out = [p for path in HELD_OUT for p in read_prompts(path)]
    assert len(held_out) == 200 + 70 + 143 + 111 + 2 * len(read_pairs(PAIRS_EVAL)) and not set(train) & set(held_out)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "data"))
    import make_imperative  # the imperative sets are generated: the files match their generator

    # the natural sets were written apart from the held-out ones: no training prompt is a near copy of one
    def words(text: str) -> set[str]:
        return set(re.findall(r"[a-z']+", text.lower()))

    natural = {p: words(p) for p in read_prompts(PROMPT_SETS / "benign_natural.jsonl") + read_prompts(PROMPT_SETS / "harmful_natural.jsonl")}
    held = [words(p) for p in held_out[200:200 + 70 + 143 + 111]]
    assert [p for p, w in natural.items() if any(len(w & h) >= 0.5 * len(w | h) for h in held)] == []
    generic = {"make", "like", "would", "do", "this", "can", "what", "setting", "off"}  # no topic in these either
    hb = [make_imperative.topic_words(h) - generic for h in harmbench]
    topics = {p: make_imperative.topic_words(p) - generic for p in read_prompts(PROMPT_SETS / "harmful_natural.jsonl")}
    assert [p for p, t in topics.items() if any(len(t & h) >= 3 for h in hb)] == []

    assert read_prompts(PROMPT_SETS / "harmful_imperative.txt") == make_imperative.harmful()
    assert read_prompts(PROMPT_SETS / "benign_imperative.txt") == make_imperative.benign()
    assert make_imperative.leaks(make_imperative.HARMFUL_TOPICS, harmbench) == []


def test_screened_training_files_pass_their_overlap_rule():
    """The files written with the held-out sets' kinds known stay clear of every held-out prompt (check_overlap.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "data"))
    import check_overlap

    held_out = check_overlap.held_out_signatures()
    screened = ("benign_edgy.jsonl", "harmful_contrast.jsonl", "benign_natural_2.jsonl", "harmful_natural_2.jsonl")
    prompts = [p for name in screened for p in read_prompts(PROMPT_SETS / name)]
    assert len(prompts) == 78 + 35 + 137 + 30
    assert [p for p in prompts if check_overlap.echo(p, held_out)] == []


def test_minimal_pairs_are_many_of_every_kind_and_held_out_pairs_use_other_words():
    """Training pairs: 1,500 and more, 150 and more of each kind, each sharing its unsafe word (save compounds such as
    heroine / heroin or knockout / knock out). Held-out pairs: 300 and more, on unsafe words no training prompt uses,
    and no held-out pair echoes a training prompt (check_overlap.py --held-out)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "data"))
    import check_overlap

    pairs, held = read_pairs(PAIRS_TRAIN), read_pairs(PAIRS_EVAL)
    assert len(pairs) >= 1500 and min(sum(p.kind == k for p in pairs) for k in PAIR_KINDS) >= 150
    assert len(held) >= 300 and min(sum(p.kind == k for p in held) for k in PAIR_KINDS) >= 25
    shared = [p for p in pairs if word_pattern([p.word]).search(p.safe) and word_pattern([p.word]).search(p.unsafe)]
    assert len(shared) >= 0.97 * len(pairs)
    banned = check_overlap.held_out_words()
    training = read_prompt_files(check_overlap.training_files())
    assert [p for p in training if banned.search(p)] == []
    others, held_out = check_overlap.signatures(training), check_overlap.held_out_signatures()
    assert [p.safe for p in held if check_overlap.why_dropped(vars(p), others, None, both_ways=True)] == []
    assert [p.safe for p in pairs if check_overlap.why_dropped(vars(p), held_out, banned, both_ways=False)] == []
