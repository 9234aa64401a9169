"""`softfold distill`: data -> teacher (LLM + guard) -> student training -> PEFT adapter or control vector +
provenance."""
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from softfold.datasets import BENIGN_TRAIN, HARMFUL_TRAIN, HELD_OUT, read_prompt_files, read_prompts
from softfold.distill.data import check_disjoint, file_sha256, split_held_out
from softfold.distill.guards import CausalLMGuard, ClassifierGuard, LabelGuard
from softfold.distill.teacher import DEFAULT_REFUSAL, load_examples, save_examples, teacher_examples
from softfold.distill.train import DistillConfig, check_student, train
from softfold.errors import UserError
from softfold.load import load_base
from softfold.prompt_format import chat_ids

SIDECAR = "softfold_distill.json"


@dataclass(frozen=True)
class DistillJob:
    model: Path
    out: Path
    config: DistillConfig = DistillConfig()
    harmful: tuple[Path, ...] = HARMFUL_TRAIN
    benign: tuple[Path, ...] = BENIGN_TRAIN
    guard: str = "labels"  # labels | classifier:DIR | causal-lm:DIR
    refusal: str = DEFAULT_REFUSAL
    max_response_tokens: int = 16
    held_out: tuple[Path, ...] = HELD_OUT
    command: str = ""  # the command line that ran this job, for the provenance sidecar
    teacher_cache: Path | None = None  # reuse the teacher's output across runs that share data, guard and model
    chat_template: Path | None = None  # a Jinja file replacing the model's chat template (needed when it has none)


def make_guard(spec: str, harmful: list[str]):
    kind, _, where = spec.partition(":")
    if kind == "labels":
        return LabelGuard(frozenset(harmful))
    if kind == "classifier" and where:
        return ClassifierGuard(Path(where))
    if kind == "causal-lm" and where:
        return CausalLMGuard(Path(where))
    raise UserError(f"--guard {spec!r} is not a guard: use labels, classifier:MODEL_DIR or causal-lm:MODEL_DIR")


def _teacher(job: DistillJob, base, guard, train_prompts: list[str], watch_prompts: list[str]) -> tuple[list, list]:
    """The teacher's examples; with a cache, only prompts it has not answered yet (or whose label changed) run."""
    template = [file_sha256(job.chat_template)] if job.chat_template else []  # keys without one stay as they were
    key = hashlib.sha256(json.dumps([file_sha256(job.model) if Path(job.model).is_file() else str(job.model),
                                     job.guard, job.refusal, job.max_response_tokens, *template]).encode()).hexdigest()
    cached = load_examples(job.teacher_cache, key) if job.teacher_cache else {}
    prompts = train_prompts + watch_prompts
    flags = dict(zip(prompts, guard.flags(prompts))) if cached else {}
    missing = [p for p in prompts if p not in cached or cached[p].flagged != flags[p]]
    if missing:
        cached |= {ex.prompt: ex for ex in teacher_examples(base, guard, missing, job.max_response_tokens, job.refusal)}
        if job.teacher_cache:
            save_examples(list(cached.values()), job.teacher_cache, key)
    return [cached[p] for p in train_prompts], [cached[p] for p in watch_prompts]


def run(job: DistillJob) -> dict:
    harmful, benign = read_prompt_files(job.harmful), read_prompt_files(job.benign)
    for path in job.held_out:
        check_disjoint(harmful + benign, read_prompts(path), f"held-out {Path(path).name}")
    base = load_base(job.model, job.chat_template)
    check_student(base, job.config)
    guard = make_guard(job.guard, harmful)
    prompts = harmful + benign
    train_prompts, watch_prompts = split_held_out(prompts)
    if job.config.baseline_only:  # the untrained mean-difference vectors: the guard's flags, no teacher replies
        flagged = guard.flags(train_prompts)
        result = train(base, [], [], job.config, job.out,
                       prompts=[(chat_ids(base.tokenizer, p), f) for p, f in zip(train_prompts, flagged)])
    else:
        examples, watch = _teacher(job, base, guard, train_prompts, watch_prompts)
        flagged = [ex.flagged for ex in examples]
        result = train(base, examples, watch, job.config, job.out)
    provenance = {
        "command": job.command, "base_model": Path(job.model).name, "guard": job.guard, "refusal": job.refusal,
        "max_response_tokens": job.max_response_tokens, **result,
        "data": {Path(p).name: file_sha256(p) for p in job.harmful + job.benign},
        "flagged_fraction": sum(flagged) / len(flagged),
    }
    (Path(job.out) / SIDECAR).write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    return provenance

