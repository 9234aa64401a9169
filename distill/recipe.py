"""`softfold distill`: data -> teacher (LLM + guard) -> student training -> PEFT adapter or control vector +
provenance."""
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError, safe_open

from softfold.data.prompt_files import Pair, read_pairs, read_prompt_files, read_prompts, word_pattern
from softfold.data.shipped import BENIGN_TRAIN, HARMFUL_TRAIN, HELD_OUT
from softfold.distill.guards import guard_for
from softfold.distill.hygiene import check_disjoint, split_held_out
from softfold.distill.teacher import DEFAULT_REFUSAL, TEACHER_TOP_K, load_examples, save_examples, teacher_examples
from softfold.distill.train import CHECKPOINT, SCRATCH, DistillConfig, check_student, train
from softfold.errors import UserError
from softfold.files import OutputKind, check_out, check_out_file, file_sha256
from softfold.inputs.base_model import read_model
from softfold.inputs.chat_template import chat_ids

SIDECAR = "softfold_distill.json"


@dataclass(frozen=True)
class DistillJob:
    model: Path
    out: Path
    config: DistillConfig = DistillConfig()
    harmful: tuple[Path, ...] = HARMFUL_TRAIN
    benign: tuple[Path, ...] = BENIGN_TRAIN
    pairs: tuple[Path, ...] = ()  # minimal-pair files: each safe member answered, each unsafe twin refused
    guard: str = "labels"  # labels | classifier:DIR | causal-lm:DIR
    refusal: str = DEFAULT_REFUSAL
    max_response_tokens: int = 16
    held_out: tuple[Path, ...] = HELD_OUT
    command: str = ""  # the command line that ran this job, for the provenance sidecar
    teacher_cache: Path | None = None  # reuse the teacher's output across runs that share data, guard and model
    chat_template: Path | None = None  # a Jinja file replacing the model's chat template (needed when it has none)


def _teacher(job: DistillJob, base, guard, train_prompts: list[str], watch_prompts: list[str]) -> tuple[list, list]:
    """The teacher's examples; with a cache, only prompts it has not answered yet (or whose label changed) run."""
    template = [file_sha256(job.chat_template)] if job.chat_template else []  # keys without one stay as they were
    key = hashlib.sha256(json.dumps([file_sha256(job.model) if Path(job.model).is_file() else str(job.model),
                                     job.guard, job.refusal, job.max_response_tokens, *template,
                                     f"top-{TEACHER_TOP_K}"]).encode()).hexdigest()
    cached = load_examples(job.teacher_cache, key) if job.teacher_cache else {}
    prompts = train_prompts + watch_prompts
    flags = dict(zip(prompts, guard.flags(prompts))) if cached else {}
    missing = [p for p in prompts if p not in cached or cached[p].flagged != flags[p]]
    if missing:
        cached |= {ex.prompt: ex for ex in teacher_examples(base, guard, missing, job.max_response_tokens, job.refusal)}
        if job.teacher_cache:
            save_examples(list(cached.values()), job.teacher_cache, key)
    return [cached[p] for p in train_prompts], [cached[p] for p in watch_prompts]


@dataclass(frozen=True)
class TrainingSplit:
    """The prompts trained on and those watched for the loss curve; each training pair's two members by index into
    `train`; and which training prompts carry a pair's unsafe word (`edgy`), for batches balanced on it."""
    train: list[str]
    watch: list[str]
    pairs: tuple[tuple[int, int], ...]
    edgy: tuple[bool, ...]


def split_training(harmful: list[str], benign: list[str], pairs: list[Pair]) -> TrainingSplit:
    """Every 10th prompt outside the pairs and every 10th pair watched, the rest trained on: a pair is never split."""
    paired = {p for pair in pairs for p in (pair.safe, pair.unsafe)}
    train, watch = split_held_out([p for p in dict.fromkeys(harmful + benign) if p not in paired])
    pairs = list({(p.safe, p.unsafe): p for p in pairs}.values())
    kept, watched = split_held_out(pairs)
    train += [p for pair in kept for p in (pair.safe, pair.unsafe)]
    watch += [p for pair in watched for p in (pair.safe, pair.unsafe)]
    index = {p: i for i, p in enumerate(train)}
    unsafe_word = word_pattern({pair.word for pair in pairs}) if pairs else None
    return TrainingSplit(train, watch, tuple((index[p.safe], index[p.unsafe]) for p in kept),
                         tuple(bool(unsafe_word and unsafe_word.search(p)) for p in train))


def is_distill_output(directory: Path) -> bool:
    """A previous `softfold distill --out`: its provenance sidecar, or its checkpoint (a run stopped early, perhaps
    killed while writing its first checkpoint: then the checkpoint holds only its own files)."""
    ckpt = directory / CHECKPOINT
    own = [p.name.startswith("state.") or SCRATCH.fullmatch(p.name) for p in ckpt.iterdir()] if ckpt.is_dir() else []
    return (directory / SIDECAR).is_file() or (ckpt / "state.json").is_file() or (own != [] and all(own))


DISTILL_OUTPUT = OutputKind("softfold distill output", is_distill_output, f"{SIDECAR} or {CHECKPOINT}/state.json",
                            replace_flag=None, fix="pass a new directory, or the --out of a previous distill to "
                                                   "resume it")


def job_inputs(job: DistillJob) -> list[Path]:
    """Every file and directory the job reads: --out may be none of them and hold none of them."""
    guard = job.guard.partition(":")[2]
    paths = [job.model, job.config.init_from, *job.harmful, *job.benign, *job.pairs, *job.held_out, job.teacher_cache,
             job.chat_template, guard]
    return [Path(p) for p in paths if p]


def is_teacher_cache(path: Path) -> bool:
    """Whether `path` is a file `save_examples` wrote (its metadata has the teacher's key and examples)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {"key", "examples"} <= set(f.metadata() or {})
    except (SafetensorError, OSError):
        return False


def run(job: DistillJob) -> dict:
    check_out(job.out, job_inputs(job), kind=DISTILL_OUTPUT)
    if job.teacher_cache:  # read, then replaced: it must be a cache this command wrote, or a new file
        others = [p for p in job_inputs(job) if p != Path(job.teacher_cache)]
        check_out_file(job.teacher_cache, others, is_teacher_cache, "--teacher-cache", "teacher cache")
    pairs = [pair for path in job.pairs for pair in read_pairs(path)]
    harmful = read_prompt_files(job.harmful) + [p.unsafe for p in pairs]
    benign = read_prompt_files(job.benign) + [p.safe for p in pairs]
    if not harmful or not benign:
        raise UserError("distill needs harmful and benign training prompts: pass --harmful FILE and --benign FILE "
                        "(or --pairs FILE), or drop the empty flag for the shipped sets")
    for path in job.held_out:
        check_disjoint(harmful + benign, read_prompts(path), f"held-out {Path(path).name}")
    base = read_model(job.model, job.chat_template).load()
    check_student(base, job.config)
    guard = guard_for(job.guard, harmful)
    split = split_training(harmful, benign, pairs)
    train_prompts, watch_prompts = split.train, split.watch
    if job.config.baseline_only:  # the untrained mean-difference vectors: the guard's flags, no teacher replies
        flagged = guard.flags(train_prompts)
        result = train(base, [], [], job.config, job.out,
                       prompts=[(chat_ids(base.tokenizer, p), f) for p, f in zip(train_prompts, flagged)])
    else:
        examples, watch = _teacher(job, base, guard, train_prompts, watch_prompts)
        flagged = [ex.flagged for ex in examples]
        result = train(base, examples, watch, job.config, job.out, pairs=split.pairs, edgy=split.edgy)
    provenance = {
        "command": job.command, "base_model": Path(job.model).name, "guard": job.guard, "refusal": job.refusal,
        "max_response_tokens": job.max_response_tokens, **result,
        "data": {Path(p).name: file_sha256(p) for p in job.harmful + job.benign + job.pairs},
        "pairs_trained": len(split.pairs),
        "flagged_fraction": sum(flagged) / len(flagged),
    }
    (Path(job.out) / SIDECAR).write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    return provenance

