"""Train the student: the frozen LLM with N trainable virtual tokens (PEFT prompt tuning).

Deterministic for a seed, resumable from its checkpoint (safetensors + JSON, never pickle), and
run through `accelerate` so `accelerate launch` scales it out unchanged.
"""
import json
import math
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from softfold.calibrate.simulate import quantized
from softfold.distill.losses import Loss, distillation_loss, margin_hinge
from softfold.distill.teacher import TeacherExample
from softfold.errors import UserError
from softfold.load import BaseModel, load_soft_prompt
from softfold.softprompt import SAFETY_INIT_TEXT, text_embeddings

CHECKPOINT = "checkpoint"


class LRSchedule(Enum):
    CONSTANT = "constant"
    COSINE = "cosine"  # lr at step 0, half a cosine down to 0 at the last step: a quieter end than constant


@dataclass(frozen=True)
class DistillConfig:
    loss: Loss = Loss.KL
    num_virtual_tokens: int = 100
    steps: int = 200
    batch_size: int = 8
    lr: float = 1e-2
    lr_schedule: LRSchedule = LRSchedule.CONSTANT
    seed: int = 0
    eval_every: int = 50
    init_text: str = SAFETY_INIT_TEXT
    bf16: bool = False  # bfloat16 autocast for the frozen LLM's compute; the soft prompt and the loss stay fp32
    # Also train through the 4-bit bundles' arithmetic (group-32 weights, int8 activations, simulated): the loss
    # is the fp32 student's plus the quantized student's, so the prompt holds its behavior in both.
    quantization_aware: bool = False
    quantized_weight: float = 1.0  # the quantized student's loss counts this many times the fp32 student's
    init_from: str = ""  # start from this PEFT prompt-tuning directory instead of init_text
    margin: float = 0.0  # nats: also train a hinge asking each teacher token to lead its rival by this much (0: off)
    # the reply's first token, where the refuse-or-answer decision falls, counts this many times each later token
    opening_weight: float = 1.0
    balanced: bool = False  # half of every batch flagged (refusals), half answered, whatever the data's mix

    def __post_init__(self):
        if self.quantized_weight <= 0:
            raise UserError(f"--quantized-weight must be > 0, got {self.quantized_weight}")
        if self.opening_weight <= 0:
            raise UserError(f"--opening-weight must be > 0 (1 weighs every reply token alike), got {self.opening_weight}")
        if self.margin < 0:
            raise UserError(f"--margin must be >= 0 nats (0 turns it off), got {self.margin}")


def learning_rate(config: DistillConfig, step: int) -> float:
    """The learning rate of `step` (0-based): a function of the step alone, so a resumed run follows it too."""
    if config.lr_schedule is LRSchedule.CONSTANT:
        return config.lr
    return config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))


def make_student(base: BaseModel, config: DistillConfig):
    from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

    peft_config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=config.num_virtual_tokens,
                                     prompt_tuning_init=PromptTuningInit.RANDOM)
    student = get_peft_model(base.model, peft_config)
    with torch.no_grad():
        if config.init_from:
            init = load_soft_prompt(config.init_from, base.config.hidden_size).embeddings
            if init.shape[0] != config.num_virtual_tokens:
                raise UserError(f"--init-from {config.init_from} has {init.shape[0]} virtual tokens, "
                                f"--num-virtual-tokens is {config.num_virtual_tokens}: make them equal")
        else:
            init = text_embeddings(base, config.init_text, config.num_virtual_tokens)
        prompt_weight(student).copy_(init)
    return student


def prompt_weight(student) -> torch.nn.Parameter:
    return student.prompt_encoder["default"].embedding.weight


def batch_loss(student, batch: list[TeacherExample], loss: Loss, bf16: bool = False, margin: float = 0.0,
               opening_weight: float = 1.0) -> torch.Tensor:
    """The loss over a batch, teacher-forced on the teacher's responses, averaged over response tokens.

    Same math as the PEFT student's forward (virtual tokens, then the chat prompt and response), but one
    right-padded forward for the batch and the LM head only at response positions: the head over the
    full vocabulary at every position is a fifth of the compute for nothing. `margin` > 0 adds `margin_hinge`;
    `opening_weight` weighs each reply's first token against the rest.
    """
    lm = student.get_base_model()
    prompt = prompt_weight(student)
    n_virtual, seqs = prompt.shape[0], [ex.prompt_ids + ex.response_ids for ex in batch]
    width, reply = max(map(len, seqs)), max(len(ex.response_ids) for ex in batch)
    ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs], device=prompt.device)
    attention = torch.tensor([[1] * (n_virtual + len(s)) + [0] * (width - len(s)) for s in seqs], device=prompt.device)
    # the hidden state at position i predicts token i + 1; padded response slots repeat the last position
    where = torch.tensor([[n_virtual + len(ex.prompt_ids) - 1 + min(j, len(ex.response_ids) - 1) for j in range(reply)]
                          for ex in batch], device=prompt.device)
    embeds = torch.cat([prompt.unsqueeze(0).expand(len(batch), -1, -1), lm.get_input_embeddings()(ids)], dim=1)
    with torch.autocast(device_type=prompt.device.type, dtype=torch.bfloat16, enabled=bf16):
        hidden = getattr(lm, lm.base_model_prefix)(inputs_embeds=embeds, attention_mask=attention).last_hidden_state
        hidden = hidden.gather(1, where.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        logits = lm.get_output_embeddings()(hidden).float()
    mask = torch.tensor([[(opening_weight if j == 0 else 1.0) * (j < len(ex.response_ids)) for j in range(reply)]
                         for ex in batch], device=prompt.device)  # weights of a mean over reply tokens
    vocab = logits.shape[-1]
    teacher = torch.stack([_pad_rows(ex.distribution(vocab), reply) for ex in batch]).to(prompt.device)
    targets = torch.tensor([ex.response_ids + [0] * (reply - len(ex.response_ids)) for ex in batch], device=prompt.device)
    distill = distillation_loss(loss, teacher, targets, logits, mask)
    return distill + margin_hinge(targets, logits, mask, margin) if margin else distill


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


def _save_checkpoint(out: Path, step: int, student, optimizer, history: list[dict]) -> None:
    ckpt = out / CHECKPOINT
    ckpt.mkdir(parents=True, exist_ok=True)
    state = optimizer.state_dict()
    tensors = {"prompt": prompt_weight(student).detach().contiguous()}
    for key, value in state["state"].get(0, {}).items():
        tensors[f"adam.{key}"] = value.detach().contiguous().reshape(value.shape)
    save_file(tensors, ckpt / "state.safetensors")
    (ckpt / "state.json").write_text(json.dumps({"step": step, "param_groups": state["param_groups"],
                                                 "history": history}))


def _load_checkpoint(out: Path, student, optimizer) -> tuple[int, list[dict]]:
    """(the step to resume from, the evaluations so far); (0, []) without a checkpoint."""
    ckpt = out / CHECKPOINT
    if not (ckpt / "state.json").exists():
        return 0, []
    meta = json.loads((ckpt / "state.json").read_text())
    tensors = load_file(ckpt / "state.safetensors")
    with torch.no_grad():
        prompt_weight(student).copy_(tensors.pop("prompt"))
    adam = {key.removeprefix("adam."): value for key, value in tensors.items()}
    optimizer.load_state_dict({"state": {0: adam} if adam else {}, "param_groups": meta["param_groups"]})
    return meta["step"], meta.get("history", [])


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
          out: Path, resume: bool = True) -> dict:
    """Train, checkpointing every eval_every steps; returns the final metrics. The student lands in `out`."""
    from accelerate import Accelerator

    torch.manual_seed(config.seed)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    student = make_student(base, config)
    optimizer = torch.optim.Adam([prompt_weight(student)], lr=config.lr)
    start, history = _load_checkpoint(out, student, optimizer) if resume else (0, [])
    student, optimizer = accelerator.prepare(student, optimizer)
    bar = tqdm(range(start, config.steps), desc=f"distill ({config.loss.value})", initial=start, total=config.steps)
    for step in bar:
        order = (balanced_order([ex.flagged for ex in train_set], config.batch_size, config.seed, step) if config.balanced
                 else batch_order(len(train_set), config.batch_size, config.seed, step))
        batch = [train_set[i] for i in order]
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
            _save_checkpoint(out, step + 1, accelerator.unwrap_model(student), optimizer, history)
    accelerator.unwrap_model(student).save_pretrained(out)
    return {"history": history,
            "config": {**asdict(config), "loss": config.loss.value, "lr_schedule": config.lr_schedule.value}}
