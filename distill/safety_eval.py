"""`softfold eval`: refusals on harmful sets, answers and over-refusals on benign ones, from generated text.

Each prompt set is a labelled file (harmful or benign); .jsonl sets may give each prompt a "form"
(question, how-to, imperative, chit-chat, short, multi-sentence), .txt sets get one from `prompt_form`.
Systems side by side: the base model, the dual system (base + guard), the student (base + soft prompt,
LoRA and/or steering vectors) in fp32 PyTorch, and exported bundles through their phone engines (TextLLMRunner, onnxruntime-genai), whose
refusal decisions are also compared one by one with the fp32 soft prompt's.
"""
import random
import re
import time
from dataclasses import dataclass, replace
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Callable

from softfold.data.prompt_files import PAIR_KINDS, read_pairs, read_prompt_records
from softfold.distill.teacher import DEFAULT_REFUSAL
from softfold.errors import UserError
from softfold.inputs.base_model import BaseModel
from softfold.inputs.chat_template import chat_ids
from softfold.inputs.control_vector import SteeringVectors
from softfold.inputs.lora import LoraAdapter
from softfold.inputs.soft_prompt import SoftPrompt
from softfold.reference.greedy import greedy_batch
from softfold.reference.reference import Reference
from softfold.reference.refusal import is_refusal, trailing_apology

SAMPLE_SEED = 0  # --limit's sample: one seed, so every run of a command evaluates the same prompts
PROBE_BATCH = 16  # replies timed for the estimate: one batch, as the PyTorch systems generate them
FORMS = ("question", "how-to", "imperative", "chit-chat", "short", "multi-sentence")
_HOW_TO = re.compile(r"^(?:how (?:do|can|should|would|to)|what(?:'s| is) the (?:best|right|easiest) way)\b", re.I)


class Label(str, Enum):
    HARMFUL = "harmful"  # a refusal is right
    BENIGN = "benign"  # an answer is right; a refusal is an over-refusal


@dataclass(frozen=True)
class PromptSet:
    name: str
    label: Label
    prompts: tuple[str, ...]
    forms: tuple[str, ...]
    kinds: tuple[str, ...] = ()  # each prompt's kind, where the file gives one (pair sets, the over-refusal set)

    def sampled(self, limit: int | None) -> "PromptSet":
        """At most `limit` prompts of the set, a seeded sample kept in the file's order: the same for every run, and
        the same positions for two sets of one length (a pair file's safe and unsafe halves)."""
        n = len(self.prompts)
        if limit is None or n <= limit:
            return self
        keep = sorted(random.Random(SAMPLE_SEED).sample(range(n), limit))

        def pick(values: tuple) -> tuple:
            return tuple(values[i] for i in keep) if values else values

        return replace(self, prompts=pick(self.prompts), forms=pick(self.forms), kinds=pick(self.kinds))


def prompt_form(prompt: str) -> str:
    """The form of a prompt, by its surface: how-to, question, multi-sentence, short or imperative (chit-chat
    can't be told from the surface: sets that have it say so)."""
    if _HOW_TO.match(prompt):
        return "how-to"
    if prompt.rstrip().endswith("?") and len(re.findall(r"[.!?](?:\s|$)", prompt)) <= 1:
        return "question"
    if len(re.findall(r"[.!?](?:\s|$)", prompt.rstrip() + " ")) >= 2:
        return "multi-sentence"
    return "short" if len(prompt.split()) <= 5 else "imperative"


def load_set(path: Path, label: Label) -> PromptSet:
    """A labelled prompt file: .txt (one prompt per line) or .jsonl ({"prompt": ..., "form": ...} per line)."""
    records = read_prompt_records(path)
    forms = [r.get("form") or prompt_form(r["prompt"]) for r in records]
    unknown = sorted(set(forms) - set(FORMS))
    if unknown:
        raise UserError(f"{path}: unknown prompt form(s) {unknown}: use one of {', '.join(FORMS)}")
    kinds = tuple(r.get("kind", "") for r in records) if all("kind" in r for r in records) else ()
    return PromptSet(Path(path).stem, label, tuple(r["prompt"] for r in records), tuple(forms), kinds)


def load_pair_sets(path: Path) -> tuple[PromptSet, PromptSet]:
    """A minimal-pair file as two sets: its safe members (NAME:safe, benign) and their unsafe twins (NAME:unsafe,
    harmful), in the same order, with their kinds and forms."""
    pairs = read_pairs(path)
    unknown = sorted({p.form for p in pairs} - set(FORMS))
    if unknown:
        raise UserError(f"{path}: unknown prompt form(s) {unknown}: use one of {', '.join(FORMS)}")
    forms, kinds = tuple(p.form for p in pairs), tuple(p.kind for p in pairs)
    return (PromptSet(f"{Path(path).stem}:safe", Label.BENIGN, tuple(p.safe for p in pairs), forms, kinds),
            PromptSet(f"{Path(path).stem}:unsafe", Label.HARMFUL, tuple(p.unsafe for p in pairs), forms, kinds))


@dataclass(frozen=True)
class SetResult:
    prompt_set: PromptSet
    replies: tuple[str, ...]

    @cached_property
    def refused(self) -> tuple[bool, ...]:
        return tuple(map(is_refusal, self.replies))

    @property
    def answered(self) -> list[str]:
        return [t for t, r in zip(self.replies, self.refused) if not r]

    def refusal_rate(self, form: str | None = None, kind: str | None = None) -> float:
        kinds = self.prompt_set.kinds or ("",) * len(self.refused)
        picked = [r for r, f, k in zip(self.refused, self.prompt_set.forms, kinds) if form in (None, f) and kind in (None, k)]
        return sum(picked) / max(len(picked), 1)

    def correct_rate(self, form: str | None = None, kind: str | None = None) -> float:
        """Refusals on a harmful set, answers on a benign one (of one form and / or kind, when given)."""
        rate = self.refusal_rate(form, kind)
        return rate if self.prompt_set.label is Label.HARMFUL else 1 - rate

    @property
    def correct(self) -> tuple[bool, ...]:
        return tuple(r == (self.prompt_set.label is Label.HARMFUL) for r in self.refused)

    def trailing_apology_rate(self) -> float:
        """Of the answered prompts, the fraction whose reply declines after answering."""
        return sum(map(trailing_apology, self.answered)) / max(len(self.answered), 1)


@dataclass(frozen=True)
class SystemResult:
    sets: tuple[SetResult, ...]

    @property
    def refused(self) -> tuple[bool, ...]:
        return tuple(r for s in self.sets for r in s.refused)

    def agreement(self, other: "SystemResult") -> float:
        """Fraction of prompts where both systems made the same refuse-or-answer decision."""
        return sum(a == b for a, b in zip(self.refused, other.refused)) / max(len(self.refused), 1)


def replies(reference: Reference, prompts: list[str], max_new_tokens: int, desc: str) -> list[str]:
    """Greedy replies in fp32 PyTorch (batched), stop ids dropped."""
    stop = set(reference.eos_ids)
    out = reference.greedy_many([reference.prompt_ids(p) for p in prompts], max_new_tokens, desc=desc)
    return [reference.tokenizer.decode([t for t in r.tokens if t not in stop]) for r in out]


def evaluate(base: BaseModel, sets: list[PromptSet], soft_prompt: SoftPrompt | None = None, guard=None,
             max_new_tokens: int = 48, bundles: dict[str, Callable[[list[str]], list[str]]] | None = None,
             include_base: bool = True, adapter: LoraAdapter | None = None,
             steering: SteeringVectors | None = None) -> dict[str, SystemResult]:
    """Every system's replies to every set: the base model, the dual system (when a guard is given),
    the student in fp32 (base + the soft prompt, the LoRA adapter unmerged and/or the steering vectors: whichever
    are given, reported by what it adds, e.g. "soft_prompt" or "lora+steering"; the LoRA goes into base.model in
    place, after the base model's turn), and bundles: by name, a function from prompts to the bundle's greedy replies (the CLI passes
    `softfold.engines.bundle_replies`, which runs a bundle through its phone engine)."""
    results: dict[str, SystemResult] = {}
    if include_base or guard is not None:
        plain = Reference(base)
        results["base"] = SystemResult(tuple(SetResult(s, tuple(replies(plain, list(s.prompts), max_new_tokens,
                                                                        f"base, {s.name}"))) for s in sets))
        if guard is not None:
            results["dual"] = SystemResult(tuple(
                SetResult(r.prompt_set, tuple(DEFAULT_REFUSAL if f else t for f, t in zip(guard.flags(list(r.prompt_set.prompts)),
                                                                                  r.replies)))
                for r in results["base"].sets))
    if soft_prompt is not None or adapter is not None or steering is not None:
        student = Reference(base, soft_prompt, adapter, steering)
        results[student_name(soft_prompt, adapter, steering)] = SystemResult(tuple(SetResult(s, tuple(replies(student, list(s.prompts), max_new_tokens,
                                                                                f"soft, {s.name}"))) for s in sets))
    for name, bundle_replies in (bundles or {}).items():
        results[name] = SystemResult(tuple(SetResult(s, tuple(bundle_replies(list(s.prompts)))) for s in sets))
    return results


def student_name(soft_prompt, adapter, steering) -> str:
    """The fp32 student's system name: what it adds to the base model."""
    return "+".join(name for name, given in (("soft_prompt", soft_prompt), ("lora", adapter), ("steering", steering))
                    if given is not None)


def markdown(results: dict[str, SystemResult], student: str = "soft_prompt") -> str:
    """Per set: refusals (harmful) or answers (benign) and trailing apologies, and each other system's agreement
    with the fp32 `student` (when present); then per prompt form."""
    sets = next(iter(results.values())).sets
    head = " | ".join(f"{s.prompt_set.name} ({len(s.prompt_set.prompts)}): "
                      f"{'refused' if s.prompt_set.label is Label.HARMFUL else 'answered'}" for s in sets)
    fp32 = results.get(student)
    lines = [f"| system | {head} | trailing apology (answered benign) | same decision as the fp32 student |",
             "|---" * (len(sets) + 3) + "|"]
    for name, system in results.items():
        answered = [t for s in system.sets if s.prompt_set.label is Label.BENIGN for t in s.answered]
        apology = sum(map(trailing_apology, answered)) / max(len(answered), 1)
        agree = f"{system.agreement(fp32):.1%}" if fp32 and name != student else "-"
        lines.append(f"| {name} | " + " | ".join(f"{s.correct_rate():.1%}" for s in system.sets)
                     + f" | {apology:.1%} | {agree} |")
    lines += ["", "By prompt form (refused on harmful sets, answered on benign sets; n in brackets):", "",
              "| system | set | " + " | ".join(FORMS) + " |", "|---" * (len(FORMS) + 2) + "|"]
    for name, system in results.items():
        for s in system.sets:
            cells = [f"{s.correct_rate(f):.0%} ({s.prompt_set.forms.count(f)})" if f in s.prompt_set.forms else "-"
                     for f in FORMS]
            lines.append(f"| {name} | {s.prompt_set.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines + kind_table(results) + pair_table(results))


def kind_table(results: dict[str, SystemResult]) -> list[str]:
    """Per kind, for the sets whose prompts have one (minimal pairs, the over-refusal set)."""
    rows = []
    for name, system in results.items():
        for s in system.sets:
            if s.prompt_set.kinds:
                kinds = [k for k in PAIR_KINDS if k in s.prompt_set.kinds] + sorted(set(s.prompt_set.kinds) - set(PAIR_KINDS))
                rows.append(f"| {name} | {s.prompt_set.name} | " + ", ".join(
                    f"{k} {s.correct_rate(kind=k):.0%} ({s.prompt_set.kinds.count(k)})" for k in kinds) + " |")
    if not rows:
        return []
    return ["", "By kind (refused on harmful sets, answered on benign sets; n in brackets):", "",
            "| system | set | kinds |", "|---|---|---|", *rows]


def pair_table(results: dict[str, SystemResult]) -> list[str]:
    """Per pair set and kind: safe members answered, unsafe twins refused, and pairs with both right."""
    rows = []
    for name, system in results.items():
        by_name = {s.prompt_set.name: s for s in system.sets}
        for safe in [s for n, s in by_name.items() if n.endswith(":safe") and n[:-5] + ":unsafe" in by_name]:
            unsafe = by_name[safe.prompt_set.name[:-5] + ":unsafe"]
            kinds = safe.prompt_set.kinds
            for kind in [k for k in PAIR_KINDS if k in kinds] + [None]:
                both = [a and b for a, b, k in zip(safe.correct, unsafe.correct, kinds) if kind in (None, k)]
                rows.append(f"| {name} | {safe.prompt_set.name[:-5]} | {kind or 'all'} | {len(both)} | "
                            f"{safe.correct_rate(kind=kind):.1%} | {unsafe.correct_rate(kind=kind):.1%} | "
                            f"{sum(both) / max(len(both), 1):.1%} |")
    if not rows:
        return []
    return ["", "Minimal pairs (safe member answered, unsafe twin refused, both):", "",
            "| system | pairs | kind | n | safe answered | unsafe refused | both |", "|---" * 7 + "|", *rows]


def to_json(results: dict[str, SystemResult]) -> dict:
    """Every system's per-prompt replies and decisions, set by set."""
    return {name: {s.prompt_set.name: {"label": s.prompt_set.label.value, "correct_rate": s.correct_rate(),
                                       "trailing_apology_rate": s.trailing_apology_rate(),
                                       "prompts": list(s.prompt_set.prompts), "forms": list(s.prompt_set.forms),
                                       **({"kinds": list(s.prompt_set.kinds)} if s.prompt_set.kinds else {}),
                                       "refused": list(s.refused), "replies": list(s.replies)}
                   for s in system.sets}
            for name, system in results.items()}


def workload(base: BaseModel, sets: list[PromptSet], systems: list[str], max_new_tokens: int) -> str:
    """The run's size, said before it starts, and its time estimated from one batch of the base model's full-length
    replies (replies that end early cost less; the bundles' engines run one prompt at a time)."""
    prompts = [p for s in sets for p in s.prompts]
    probe = [chat_ids(base.tokenizer, p) for p in prompts[:PROBE_BATCH]]
    start = time.perf_counter()
    greedy_batch(base.model, probe, max_new_tokens, stop=set())
    per_reply = (time.perf_counter() - start) / len(probe)
    replies = len(prompts) * len(systems)
    return (f"softfold eval: {len(prompts):,} prompts ({len(sets)} sets) x {len(systems)} systems "
            f"({', '.join(systems)}) = {replies:,} greedy replies of up to {max_new_tokens} tokens, about "
            f"{_duration(replies * per_reply)} here (timed on one batch); --limit N samples N prompts per set")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{max(seconds, 1):.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
