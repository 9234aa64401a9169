"""Train the student: the frozen LLM with N trainable virtual tokens (PEFT prompt tuning).

Deterministic for a seed, resumable from its checkpoint (safetensors + JSON, never pickle), and
run through `accelerate` so `accelerate launch` scales it out unchanged.
"""
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from softfold.distill.losses import Loss, distillation_loss
from softfold.distill.teacher import TeacherExample
from softfold.load import BaseModel
from softfold.softprompt import SAFETY_INIT_TEXT, text_embeddings

CHECKPOINT = "checkpoint"


@dataclass(frozen=True)
class DistillConfig:
    loss: Loss = Loss.KL
    num_virtual_tokens: int = 100
    steps: int = 200
    batch_size: int = 8
    lr: float = 1e-2
    seed: int = 0
    eval_every: int = 50
    init_text: str = SAFETY_INIT_TEXT


def make_student(base: BaseModel, config: DistillConfig):
    from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

    peft_config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=config.num_virtual_tokens,
                                     prompt_tuning_init=PromptTuningInit.RANDOM)
    student = get_peft_model(base.model, peft_config)
    with torch.no_grad():
        prompt_weight(student).copy_(text_embeddings(base, config.init_text, config.num_virtual_tokens))
    return student


def prompt_weight(student) -> torch.nn.Parameter:
    return student.prompt_encoder["default"].embedding.weight


def example_loss(student, ex: TeacherExample, loss: Loss) -> torch.Tensor:
    """The loss on one example, teacher-forced on the teacher's response."""
    ids = torch.tensor([ex.prompt_ids + ex.response_ids])
    n_virtual = prompt_weight(student).shape[0]
    logits = student(input_ids=ids).logits[0, n_virtual + len(ex.prompt_ids) - 1: -1]
    mask = torch.ones(1, len(ex.response_ids))
    return distillation_loss(loss, ex.logits.unsqueeze(0), torch.tensor([ex.response_ids]), logits.unsqueeze(0), mask)


def batch_order(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Examples for `step`: a fresh seeded permutation per epoch, so any step can be recomputed on resume."""
    per_epoch = max(n // batch_size, 1)
    epoch, offset = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
    return order[offset * batch_size: offset * batch_size + batch_size]


def _save_checkpoint(out: Path, step: int, student, optimizer) -> None:
    ckpt = out / CHECKPOINT
    ckpt.mkdir(parents=True, exist_ok=True)
    state = optimizer.state_dict()
    tensors = {"prompt": prompt_weight(student).detach().contiguous()}
    for key, value in state["state"].get(0, {}).items():
        tensors[f"adam.{key}"] = value.detach().contiguous().reshape(value.shape)
    save_file(tensors, ckpt / "state.safetensors")
    (ckpt / "state.json").write_text(json.dumps({"step": step, "param_groups": state["param_groups"]}))


def _load_checkpoint(out: Path, student, optimizer) -> int:
    ckpt = out / CHECKPOINT
    if not (ckpt / "state.json").exists():
        return 0
    meta = json.loads((ckpt / "state.json").read_text())
    tensors = load_file(ckpt / "state.safetensors")
    with torch.no_grad():
        prompt_weight(student).copy_(tensors.pop("prompt"))
    adam = {key.removeprefix("adam."): value for key, value in tensors.items()}
    optimizer.load_state_dict({"state": {0: adam} if adam else {}, "param_groups": meta["param_groups"]})
    return meta["step"]


@torch.no_grad()
def evaluate_loss(student, examples: list[TeacherExample], loss: Loss) -> float:
    return sum(example_loss(student, ex, loss).item() for ex in examples) / max(len(examples), 1)


def train(base: BaseModel, train_set: list[TeacherExample], eval_set: list[TeacherExample], config: DistillConfig,
          out: Path, resume: bool = True) -> dict:
    """Train, checkpointing every eval_every steps; returns the final metrics. The student lands in `out`."""
    from accelerate import Accelerator

    torch.manual_seed(config.seed)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    student = make_student(base, config)
    optimizer = torch.optim.Adam([prompt_weight(student)], lr=config.lr)
    start = _load_checkpoint(out, student, optimizer) if resume else 0
    student, optimizer = accelerator.prepare(student, optimizer)
    history = []
    bar = tqdm(range(start, config.steps), desc=f"distill ({config.loss.value})", initial=start, total=config.steps)
    for step in bar:
        batch = [train_set[i] for i in batch_order(len(train_set), config.batch_size, config.seed, step)]
        loss = sum(example_loss(student, ex, config.loss) for ex in batch) / len(batch)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            history.append({"step": step + 1, "train_loss": loss.item(),
                            "eval_loss": evaluate_loss(student, eval_set, config.loss)})
            _save_checkpoint(out, step + 1, accelerator.unwrap_model(student), optimizer)
    accelerator.unwrap_model(student).save_pretrained(out)
    return {"history": history, "config": {**asdict(config), "loss": config.loss.value}}
