"""Train the student: the frozen LLM with an adapter, its only trainable parameters (`Method`): N virtual tokens
(PEFT prompt tuning), low-rank updates of its Linears (PEFT LoRA), or steering vectors added to its residual stream
(a llama.cpp control vector).

Deterministic for a seed, resumable from its checkpoint (safetensors + JSON, never pickle), and
run through `accelerate` so `accelerate launch` scales it out unchanged.
"""
import copy
import json
import math
import os
import re
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from softfold.calibrate.simulate import quantized
from softfold.distill.losses import Loss, distillation_loss, margin_hinge
from softfold.distill.prompt_init import SAFETY_INIT_TEXT, text_embeddings
from softfold.distill.steering_student import SteeringStudent, mean_difference
from softfold.distill.teacher import TeacherExample
from softfold.errors import UserError
from softfold.inputs.base_model import BaseModel
from softfold.inputs.control_vector import check_layers, default_layers
from softfold.inputs.lora import ALL_LINEAR
from softfold.inputs.soft_prompt import load_soft_prompt

CHECKPOINT = "checkpoint"
STEPS = "steps"  # OUT/steps/STEP: the adapter at each evaluated step (--keep-steps)
STATE_KEY = "softfold_state"  # the checkpoint's step, history and optimizer settings, in its tensors' metadata
# what a killed run leaves half-written: safetensors' own scratch file (.tmpXXXXXX, renamed into place when
# complete) and ours (NAME.partial)
SCRATCH = re.compile(r"\.tmp[A-Za-z0-9]{6}|.+\.partial")


class Method(Enum):
    """What the student trains (`softfold distill --method`)."""
    PROMPT = "prompt"  # N virtual tokens in front of every input (PEFT prompt tuning)
    LORA = "lora"  # low-rank updates B A of the LLM's Linears (PEFT LoRA), merged into the weights at export
    STEERING = "steering"  # one vector per chosen layer added after its block (a llama.cpp control vector)


# steering: Adam moves each component by at most lr per step, so 200 steps of 1e-2 reach about 2, the size of a small
# model's middle-block residual stream: room to matter, not to swamp it (docs/commands.md, "distill")
DEFAULT_LR = {Method.PROMPT: 1e-2, Method.LORA: 2e-4, Method.STEERING: 1e-2}


class SteeringInit(Enum):
    """Where --method steering's vectors start."""
    ZERO = "zero"  # the LLM itself
    MEAN_DIFFERENCE = "mean-difference"  # the classic baseline (distill/steering_student.py); with --steps 0, all there is


class LRSchedule(Enum):
    CONSTANT = "constant"
    COSINE = "cosine"  # lr at step 0, half a cosine down to 0 at the last step: a quieter end than constant


@dataclass(frozen=True)
class DistillConfig:
    method: Method = Method.PROMPT
    loss: Loss = Loss.KL
    num_virtual_tokens: int = 100  # --method prompt
    lora_rank: int = 8  # --method lora: r, and the update's scale lora_alpha / r
    lora_alpha: float = 16.0
    lora_target_modules: tuple[str, ...] = (ALL_LINEAR,)  # module names (suffixes), or ALL_LINEAR
    steering_layers: tuple[int, ...] = ()  # --method steering: llama.cpp layer indices; () = steering.default_layers
    steering_init: SteeringInit = SteeringInit.ZERO
    steering_scale: float = 1.0  # the mean difference is scaled by this (--steering-init mean-difference)
    steps: int = 200
    batch_size: int = 8
    lr: float | None = None  # None: the method's DEFAULT_LR
    lr_schedule: LRSchedule = LRSchedule.CONSTANT
    seed: int = 0
    eval_every: int = 50
    init_text: str = SAFETY_INIT_TEXT
    bf16: bool = False  # bfloat16 autocast for the frozen LLM's compute; the soft prompt and the loss stay fp32
    # Also train through the 4-bit bundles' arithmetic (group-32 weights, int8 activations, simulated): the loss
    # is the fp32 student's plus the quantized student's, so the prompt holds its behavior in both.
    quantization_aware: bool = False
    quantized_weight: float = 1.0  # the quantized student's loss counts this many times the fp32 student's
    init_from: str = ""  # start from this PEFT prompt-tuning directory instead of init_text (--method prompt)
    margin: float = 0.0  # nats: also train a hinge asking each teacher token to lead its rival by this much (0: off)
    # the reply's first token, where the refuse-or-answer decision falls, counts this many times each later token
    opening_weight: float = 1.0
    balanced: bool = False  # half of every batch flagged (refusals), half answered, whatever the data's mix
    # minimal pairs in every batch, both members (with training pairs); the rest of the batch balanced both ways:
    # refused against answered, and answered prompts carrying a pair's unsafe word against refused ones carrying one
    pairs_per_batch: int = 0
    keep_steps: bool = False  # also write the adapter at every eval_every step, to OUT/steps/STEP

    def __post_init__(self):
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.method])
        if not (math.isfinite(self.lr) and self.lr > 0):  # 0 trains nothing; NaN or Inf wrecks the adapter
            raise UserError(f"--lr must be a finite number > 0 (default {DEFAULT_LR[self.method]} for --method "
                            f"{self.method.value}), got {self.lr}")
        if self.method is Method.LORA:
            check_lora_settings(self)
        if self.method is Method.STEERING:
            check_steering_settings(self)
        if self.steps < 0 or (self.steps == 0 and not self.baseline_only):
            raise UserError(f"--steps {self.steps} trains nothing: pass --steps N >= 1 (--steps 0 writes the untrained "
                            "baseline of --method steering --steering-init mean-difference only)")
        if self.quantized_weight <= 0:
            raise UserError(f"--quantized-weight must be > 0, got {self.quantized_weight}")
        if self.opening_weight <= 0:
            raise UserError(f"--opening-weight must be > 0 (1 weighs every reply token alike), got {self.opening_weight}")
        if self.margin < 0:
            raise UserError(f"--margin must be >= 0 nats (0 turns it off), got {self.margin}")
        if not 0 <= 2 * self.pairs_per_batch <= self.batch_size:
            raise UserError(f"--pairs-per-batch {self.pairs_per_batch}: each pair takes two of the --batch-size "
                            f"{self.batch_size} slots; pass 0 to {self.batch_size // 2}")

    @property
    def baseline_only(self) -> bool:
        """The untrained mean-difference steering vectors, no teacher and no training (--steps 0)."""
        return (self.steps == 0 and self.method is Method.STEERING
                and self.steering_init is SteeringInit.MEAN_DIFFERENCE)


def check_steering_settings(config: DistillConfig) -> None:
    if len(set(config.steering_layers)) < len(config.steering_layers):
        raise UserError(f"--steering-layers lists a layer twice: {' '.join(map(str, config.steering_layers))}")
    if not math.isfinite(config.steering_scale) or config.steering_scale == 0:
        raise UserError(f"--steering-scale must be a finite number other than 0, got {config.steering_scale}")
    if config.steering_scale != 1.0 and config.steering_init is not SteeringInit.MEAN_DIFFERENCE:
        raise UserError("--steering-scale scales the mean-difference vectors: pass --steering-init mean-difference, "
                        "or drop the flag")
    if config.init_from:
        raise UserError("--init-from takes a prompt-tuning directory (--method prompt); --method steering starts "
                        "from --steering-init: drop the flag")


def check_lora_settings(config: DistillConfig) -> None:
    if config.lora_rank < 1:
        raise UserError(f"--lora-rank must be >= 1, got {config.lora_rank}")
    if config.lora_alpha <= 0:
        raise UserError(f"--lora-alpha must be > 0 (the update is scaled by alpha / rank), got {config.lora_alpha}")
    if not config.lora_target_modules or (ALL_LINEAR in config.lora_target_modules
                                          and len(config.lora_target_modules) > 1):
        raise UserError(f"--lora-target-modules takes module names (q_proj v_proj ...) or {ALL_LINEAR} alone, got "
                        f"{' '.join(config.lora_target_modules) or 'nothing'}")
    if config.quantization_aware:
        raise UserError("--quantization-aware trains a soft prompt through the 4-bit arithmetic; with --method lora "
                        "the merged weights are rounded at export (use --algorithm gptq there): drop the flag")
    if config.init_from:
        raise UserError("--init-from takes a prompt-tuning directory (--method prompt); --method lora starts from "
                        "the base model itself (B = 0): drop the flag")


def learning_rate(config: DistillConfig, step: int) -> float:
    """The learning rate of `step` (0-based): a function of the step alone, so a resumed run follows it too."""
    if config.lr_schedule is LRSchedule.CONSTANT:
        return config.lr
    return config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))


def make_student(base: BaseModel, config: DistillConfig, prompts: list[tuple[list[int], bool]] = ()):
    """The model `config.method` trains: the frozen LLM with the method's adapter, its only trainable parameters
    (`trainable_parameters`); a PEFT model, or a SteeringStudent. `prompts`: the training prompts (chat token ids,
    flagged), which --steering-init mean-difference starts from."""
    if config.method is Method.STEERING:
        return steering_student(base, config, prompts)
    return {Method.PROMPT: prompt_student, Method.LORA: lora_student}[config.method](base, config)


def for_model(config: DistillConfig, base: BaseModel) -> DistillConfig:
    """`config` with the defaults that depend on the model filled in: the steering layers."""
    if config.method is not Method.STEERING or config.steering_layers:
        return config
    return replace(config, steering_layers=default_layers(base.config.num_hidden_layers))


def check_student(base: BaseModel, config: DistillConfig) -> None:
    """The method's settings against the model (LoRA's target modules, the steering layers, --init-from's soft
    prompt), in seconds: before the teacher's work."""
    if config.method is Method.LORA:
        check_target_modules(base.model, config.lora_target_modules)
    elif config.method is Method.STEERING:
        check_layers(for_model(config, base).steering_layers, base.config.num_hidden_layers, "--steering-layers")
    elif config.init_from:
        _init_from(base, config)


def prompt_student(base: BaseModel, config: DistillConfig):
    from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

    peft_config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=config.num_virtual_tokens,
                                     prompt_tuning_init=PromptTuningInit.RANDOM)
    student = get_peft_model(base.model, peft_config)
    with torch.no_grad():
        init = _init_from(base, config) if config.init_from else text_embeddings(base, config.init_text,
                                                                                  config.num_virtual_tokens)
        prompt_weight(student).copy_(init)
    return student


def _init_from(base: BaseModel, config: DistillConfig) -> torch.Tensor:
    init = load_soft_prompt(config.init_from, base.config.hidden_size).embeddings
    if init.shape[0] != config.num_virtual_tokens:
        raise UserError(f"--init-from {config.init_from} has {init.shape[0]} virtual tokens, "
                        f"--num-virtual-tokens is {config.num_virtual_tokens}: make them equal")
    return init


def lora_student(base: BaseModel, config: DistillConfig):
    """LoRA on a copy of the LLM: PEFT puts its layers into the model it wraps, and the caller's stays the plain
    LLM (the teacher's, the reference's). B starts at 0, so the student starts as the LLM itself."""
    from peft import LoraConfig, TaskType, get_peft_model

    targets = config.lora_target_modules
    check_target_modules(base.model, targets)
    peft_config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=config.lora_rank, lora_alpha=config.lora_alpha,
                             lora_dropout=0.0, target_modules=ALL_LINEAR if targets == (ALL_LINEAR,) else list(targets))
    return get_peft_model(copy.deepcopy(base.model), peft_config)


def steering_student(base: BaseModel, config: DistillConfig, prompts: list[tuple[list[int], bool]]) -> SteeringStudent:
    """Vectors after the chosen layers of the caller's LLM (which stays as it is outside the student's `active()`):
    zero, so the student starts as the LLM itself, or the mean difference of the training prompts' activations."""
    layers = for_model(config, base).steering_layers
    check_layers(layers, base.config.num_hidden_layers, "--steering-layers")
    if config.steering_init is SteeringInit.MEAN_DIFFERENCE:
        vectors = mean_difference(base.model, list(prompts), layers, config.steering_scale)
    else:
        vectors = {layer: torch.zeros(base.config.hidden_size) for layer in layers}
    return SteeringStudent(base.model, vectors)


def adapted(student):
    """Where the student's adapter acts: a steering student's vectors inside this context, PEFT's everywhere."""
    return student.active() if isinstance(student, SteeringStudent) else nullcontext()


def check_target_modules(model: torch.nn.Module, targets: tuple[str, ...]) -> None:
    """Each --lora-target-modules name ends some Linear's name (PEFT's rule), or a one-line UserError listing them."""
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    missing = [t for t in targets if t != ALL_LINEAR and not any(n == t or n.endswith("." + t) for n in linears)]
    if missing:
        names = sorted({n.rsplit(".", 1)[-1] for n in linears})
        raise UserError(f"--lora-target-modules {' '.join(missing)}: no such Linear in this model; its Linears: "
                        f"{' '.join(names)} (or {ALL_LINEAR})")


def trainable_parameters(student) -> dict[str, torch.nn.Parameter]:
    """The adapter's parameters by name, in a fixed order (the optimizer's and the checkpoint's)."""
    return {name: p for name, p in student.named_parameters() if p.requires_grad}


def prompt_weight(student) -> torch.nn.Parameter:
    return student.prompt_encoder["default"].embedding.weight


def prompt_embeddings(student) -> torch.Tensor:
    """The embeddings [N, hidden] the student puts before every input: its soft prompt; none (N = 0) for LoRA and
    steering."""
    peft_config = getattr(student, "peft_config", None)
    if peft_config and peft_config["default"].is_prompt_learning:
        return prompt_weight(student)
    return student.get_input_embeddings().weight[:0]


def batch_loss(student, batch: list[TeacherExample], loss: Loss, bf16: bool = False, margin: float = 0.0,
               opening_weight: float = 1.0) -> torch.Tensor:
    """The loss over a batch, teacher-forced on the teacher's responses, averaged over response tokens.

    Same math as the PEFT student's forward (virtual tokens, then the chat prompt and response), but the virtual
    tokens run once for the batch (`shared_prefix`), one right-padded forward for the batch's text, and the LM head
    only at response positions: the head over the full vocabulary at every position is a fifth of the compute for
    nothing. `margin` > 0 adds `margin_hinge`; `opening_weight` weighs each reply's first token against the rest.
    """
    lm = student.get_base_model()
    decoder, prompt = getattr(lm, lm.base_model_prefix), prompt_embeddings(student)
    n_virtual, seqs = prompt.shape[0], [ex.prompt_ids + ex.response_ids for ex in batch]
    width, reply = max(map(len, seqs)), max(len(ex.response_ids) for ex in batch)
    ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs], device=prompt.device)
    attention = torch.tensor([[1] * (n_virtual + len(s)) + [0] * (width - len(s)) for s in seqs], device=prompt.device)
    # the hidden state at position i predicts token i + 1; padded response slots repeat the last position
    where = torch.tensor([[len(ex.prompt_ids) - 1 + min(j, len(ex.response_ids) - 1) for j in range(reply)]
                          for ex in batch], device=prompt.device)
    with adapted(student), torch.autocast(device_type=prompt.device.type, dtype=torch.bfloat16, enabled=bf16):
        prefix = shared_prefix(decoder, prompt, len(batch)) if n_virtual else None
        hidden = decoder(inputs_embeds=lm.get_input_embeddings()(ids), attention_mask=attention,
                         past_key_values=prefix, use_cache=prefix is not None).last_hidden_state
        hidden = hidden.gather(1, where.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        logits = lm.get_output_embeddings()(hidden).float()
    mask = torch.tensor([[(opening_weight if j == 0 else 1.0) * (j < len(ex.response_ids)) for j in range(reply)]
                         for ex in batch], device=prompt.device)  # weights of a mean over reply tokens
    vocab = logits.shape[-1]
    teacher = torch.stack([_pad_rows(ex.distribution(vocab), reply) for ex in batch]).to(prompt.device)
    targets = torch.tensor([ex.response_ids + [0] * (reply - len(ex.response_ids)) for ex in batch], device=prompt.device)
    distill = distillation_loss(loss, teacher, targets, logits, mask)
    return distill + margin_hinge(targets, logits, mask, margin) if margin else distill


def shared_prefix(decoder: torch.nn.Module, prompt: torch.Tensor, batch_size: int):
    """The virtual tokens' K/V cache, computed once and repeated for each example: they come first and attend to
    nothing after them, so every example's are the same. Their N positions are most of a short example's, so a
    batch of B costs about N + B * text positions instead of B * (N + text)."""
    cache = decoder(inputs_embeds=prompt.unsqueeze(0), use_cache=True).past_key_values
    cache.batch_repeat_interleave(batch_size)
    return cache


def training_loss(student, batch: list[TeacherExample], config: DistillConfig) -> torch.Tensor:
    """batch_loss, plus the same loss through the simulated 4-bit model when training quantization-aware."""
    loss = batch_loss(student, batch, config.loss, config.bf16, config.margin, config.opening_weight)
    if config.quantization_aware:
        with simulated_4bit(student):
            loss = loss + config.quantized_weight * batch_loss(student, batch, config.loss, config.bf16, config.margin,
                                                               config.opening_weight)
    return loss


def simulated_4bit(student):
    """Every Linear of the frozen LLM (LM head included) at 4-bit group-32 weights x int8 activations."""
    lm = student.get_base_model()
    layers = tuple(f"layers.{i}" for i in range(lm.config.num_hidden_layers)) + ("lm_head",)
    return quantized(lm, layers, bits=4, group_size=32)


def _pad_rows(rows: torch.Tensor, n: int) -> torch.Tensor:
    return torch.cat([rows, rows[-1:].expand(n - rows.shape[0], -1)]) if rows.shape[0] < n else rows


def batch_order(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Examples for `step`: a fresh seeded permutation per epoch, so any step can be recomputed on resume."""
    per_epoch = max(n // batch_size, 1)
    epoch, offset = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
    return order[offset * batch_size: offset * batch_size + batch_size]


def balanced_order(flagged: list[bool], batch_size: int, seed: int, step: int) -> list[int]:
    """Examples for `step`, half flagged and half not (each class in its own seeded epochs): the decision is
    learned on even odds whatever the data's mix."""
    classes = [[i for i, f in enumerate(flagged) if f], [i for i, f in enumerate(flagged) if not f]]
    if not all(classes):
        raise UserError("balanced batches need both refused (flagged) and answered training prompts")
    halves = (batch_size - batch_size // 2, batch_size // 2)
    return [c[i] for c, half, offset in zip(classes, halves, (0, 1))
            for i in batch_order(len(c), half, seed + offset, step)]


def paired_order(flagged: list[bool], edgy: tuple[bool, ...], pairs: tuple[tuple[int, int], ...], batch_size: int,
                 pairs_per_batch: int, seed: int, step: int) -> list[int]:
    """Examples for `step`: `pairs_per_batch` minimal pairs, both members side by side, so each step sees the line
    between a safe request and its unsafe twin; the rest of the batch half refused and half answered, and among
    them as many answered prompts carrying an unsafe word (`edgy`) as refused ones, so no word predicts the label."""
    chosen = [i for n in batch_order(len(pairs), pairs_per_batch, seed + 2, step) for i in pairs[n]]
    paired = {i for pair in pairs for i in pair}
    strata = [[i for i, (f, e) in enumerate(zip(flagged, edgy)) if i not in paired and f == label and e == word]
              for label in (True, False) for word in (True, False)]
    rest = batch_size - len(chosen)
    refused, answered = rest - rest // 2, rest // 2
    quotas = [answered // 2, refused - answered // 2, answered // 2, answered - answered // 2]
    for k in (0, 2):  # a stratum with no prompts hands its quota to the other of its label
        for a, b in ((k, k + 1), (k + 1, k)):
            if not strata[a]:
                quotas[a], quotas[b] = 0, quotas[a] + quotas[b]
    if any(q and not s for q, s in zip(quotas, strata)):
        raise UserError("paired batches need refused (flagged) and answered training prompts besides the pairs")
    return chosen + [s[i] for k, (s, q) in enumerate(zip(strata, quotas)) if q
                     for i in batch_order(len(s), q, seed + 3 + k, step)]


def batch_indices(flagged: list[bool], config: DistillConfig, step: int, pairs: tuple[tuple[int, int], ...] = (),
                  edgy: tuple[bool, ...] = ()) -> list[int]:
    """The training examples of `step`, by the config's batching: paired, balanced or plain."""
    if pairs and config.pairs_per_batch:
        return paired_order(flagged, edgy, pairs, config.batch_size, config.pairs_per_batch, config.seed, step)
    if config.balanced:
        return balanced_order(flagged, config.batch_size, config.seed, step)
    return batch_order(len(flagged), config.batch_size, config.seed, step)


def _save_checkpoint(out: Path, step: int, student, optimizer, history: list[dict], method: Method) -> None:
    """The adapter's parameters ("param.NAME") and Adam's state ("adam.I.SLOT", I the parameter's index), the run's
    state (step, history) in the same file's metadata, and that state again in state.json for people. Each file is
    written beside its place and renamed into it: a kill leaves the previous checkpoint or this one, never a mix."""
    ckpt = out / CHECKPOINT
    ckpt.mkdir(parents=True, exist_ok=True)
    state = optimizer.state_dict()
    tensors = {f"param.{name}": p.detach().contiguous() for name, p in trainable_parameters(student).items()}
    for index, slots in state["state"].items():
        tensors |= {f"adam.{index}.{slot}": value.detach().contiguous() for slot, value in slots.items()}
    meta = json.dumps({"method": method.value, "step": step, "param_groups": state["param_groups"], "history": history})
    _write_whole(ckpt / "state.safetensors", lambda tmp: save_file(tensors, tmp, metadata={STATE_KEY: meta}))
    _write_whole(ckpt / "state.json", lambda tmp: tmp.write_text(meta))


def _write_whole(path: Path, write) -> None:
    """`write(tmp)` to a scratch file beside `path`, then renamed over it (atomic on one file system)."""
    tmp = path.with_name(path.name + ".partial")
    write(tmp)
    os.replace(tmp, path)


def remove_scratch(out: Path) -> None:
    """The half-written files a killed run left in `out` and its checkpoint (SCRATCH): a resume starts clean."""
    for directory in (out, out / CHECKPOINT):
        if directory.is_dir():
            for path in directory.iterdir():
                if SCRATCH.fullmatch(path.name) and path.is_file():
                    path.unlink()


def _checkpoint_state(ckpt: Path) -> dict | None:
    """The step, history and optimizer settings of the checkpoint: its tensors' metadata (written with them), or
    state.json for checkpoints written before that; None without one."""
    if (ckpt / "state.safetensors").exists():
        with safe_open(str(ckpt / "state.safetensors"), framework="pt") as f:
            meta = (f.metadata() or {}).get(STATE_KEY)
        if meta is not None:
            return json.loads(meta)
    if (ckpt / "state.json").exists() and (ckpt / "state.safetensors").exists():
        return json.loads((ckpt / "state.json").read_text())
    return None


def _load_checkpoint(out: Path, student, optimizer, method: Method) -> tuple[int, list[dict]]:
    """(the step to resume from, the evaluations so far); (0, []) without a checkpoint."""
    ckpt = out / CHECKPOINT
    meta = _checkpoint_state(ckpt)
    if meta is None:
        return 0, []
    if meta.get("method", Method.PROMPT.value) != method.value:
        raise UserError(f"{ckpt} holds a --method {meta['method']} run: resume it with that method, or pass "
                        "another --out")
    params = trainable_parameters(student)
    tensors = _named_layout(load_file(ckpt / "state.safetensors"), params)
    saved = {key.removeprefix("param."): t for key, t in tensors.items() if key.startswith("param.")}
    if {n: tuple(p.shape) for n, p in params.items()} != {n: tuple(t.shape) for n, t in saved.items()}:
        raise UserError(f"{ckpt} was trained with other adapter settings (virtual tokens, LoRA rank or target "
                        "modules, steering layers): resume it with its own flags (its softfold_distill.json), or pass "
                        "another --out")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(saved[name])
    adam: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("adam."):
            index, slot = key.removeprefix("adam.").split(".", 1)
            adam.setdefault(int(index), {})[slot] = value
    optimizer.load_state_dict({"state": adam, "param_groups": meta["param_groups"]})
    return meta["step"], meta.get("history", [])


def _named_layout(tensors: dict[str, torch.Tensor], params: dict) -> dict[str, torch.Tensor]:
    """A checkpoint of the soft-prompt-only layout ("prompt", "adam.SLOT") in today's names; others as they are."""
    if "prompt" not in tensors or len(params) != 1:
        return tensors
    prompt = tensors.pop("prompt")
    return {f"param.{next(iter(params))}": prompt,
            **{f"adam.0.{key.removeprefix('adam.')}": value for key, value in tensors.items()}}


@torch.no_grad()
def evaluate_loss(student, examples: list[TeacherExample], config: DistillConfig) -> float:
    """Mean of the per-batch losses over `examples`, in order."""
    chunks = [examples[i:i + config.batch_size] for i in range(0, len(examples), config.batch_size)]
    return sum(batch_loss(student, chunk, config.loss, config.bf16).item() for chunk in chunks) / max(len(chunks), 1)


def evaluate_losses(student, examples: list[TeacherExample], config: DistillConfig) -> dict[str, float]:
    losses = {"eval_loss": evaluate_loss(student, examples, config)}
    if config.quantization_aware:
        with simulated_4bit(student):
            losses["eval_loss_4bit"] = evaluate_loss(student, examples, config)
    return losses


def train(base: BaseModel, train_set: list[TeacherExample], eval_set: list[TeacherExample], config: DistillConfig,
          out: Path, resume: bool = True, prompts: list[tuple[list[int], bool]] | None = None,
          pairs: tuple[tuple[int, int], ...] = (), edgy: tuple[bool, ...] = ()) -> dict:
    """Train, checkpointing every eval_every steps; returns the final metrics. The student lands in `out`, a PEFT
    adapter directory (prompt tuning or LoRA) or OUT/control_vector.gguf (steering). `prompts`: (token ids,
    flagged) of the training prompts a mean-difference start is computed from (default: train_set's; the
    untrained baseline, --steps 0, has no teacher examples). `pairs`: minimal pairs, (safe, unsafe) indices into
    train_set, and `edgy`: which examples carry an unsafe word, for `paired_order`'s batches."""
    from accelerate import Accelerator

    config = for_model(config, base)
    torch.manual_seed(config.seed)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    prompts = [(ex.prompt_ids, ex.flagged) for ex in train_set] if prompts is None else prompts
    student = make_student(base, config, prompts)
    optimizer = torch.optim.Adam(list(trainable_parameters(student).values()), lr=config.lr)
    resume = resume and not config.baseline_only  # the baseline is computed, never resumed
    remove_scratch(Path(out))
    start, history = _load_checkpoint(out, student, optimizer, config.method) if resume else (0, [])
    student, optimizer = accelerator.prepare(student, optimizer)
    bar = tqdm(range(start, config.steps), desc=f"distill ({config.method.value}, {config.loss.value})", initial=start,
               total=config.steps, disable=config.steps == 0)
    for step in bar:
        batch = [train_set[i] for i in batch_indices([ex.flagged for ex in train_set], config, step, pairs, edgy)]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        loss = training_loss(student, batch, config)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            history.append({"step": step + 1, "train_loss": loss.item(),
                            **evaluate_losses(accelerator.unwrap_model(student), eval_set, config)})
            _save_checkpoint(out, step + 1, accelerator.unwrap_model(student), optimizer, history, config.method)
            if config.keep_steps:
                accelerator.unwrap_model(student).save_pretrained(out / STEPS / str(step + 1))
    accelerator.unwrap_model(student).save_pretrained(out)
    return {"history": history,
            "config": {**asdict(config), "method": config.method.value, "loss": config.loss.value,
                       "lr_schedule": config.lr_schedule.value, "steering_init": config.steering_init.value}}
