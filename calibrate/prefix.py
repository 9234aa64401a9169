"""Calibrate the soft prompt's prefix K/V to a quantized recipe (`softfold calibrate-prefix`).

A 4-bit model reads the fp32 prefix K/V differently from the fp32 model, and a decision near the
refuse-or-answer boundary can flip (measurements: docs/lab/runs.md). The prefix K/V are the part of a bundle that stays fp32, and they are free parameters of
the exported graph, so this fits them to the recipe: the quantized model (its arithmetic simulated
in PyTorch, gradients straight through the rounding) is trained to match the fp32 student's
next-token distributions (KL) over its greedy replies to calibration prompts. Weights and soft
prompt are unchanged, and the fp32 student stays the reference every parity gate compares with.
(IntactKV, Liu et al. 2024, calibrates the fp32 K/V of a few pivot tokens for the same reason.)
"""
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from softfold.calibrate.rounding import gptq_for
from softfold.calibrate.simulate import simulated
from softfold.errors import UserError
from softfold.export.config import QuantSim
from softfold.inputs.base_model import BaseModel, eos_ids
from softfold.inputs.chat_template import chat_ids
from softfold.inputs.soft_prompt import SoftPrompt
from softfold.reference.greedy import KV, expand_cache, greedy_batch, prefix_cache

PREFIX_METADATA = "softfold_prefix_kv"  # the metadata key of the files save_prefix writes


@dataclass(frozen=True)
class PrefixCalibration:
    """How the prefix K/V are fitted. Calibration prompts come from the distillation training files."""
    steps: int = 300
    batch_size: int = 8
    lr: float = 1e-2  # Adam, on each layer's K/V offset in units of that layer's K/V standard deviation
    prompts_per_file: int = 64
    reply_tokens: int = 12  # of the fp32 student's greedy reply, teacher-forced
    # More prompts, first reply token only: the refuse-or-answer decision falls there, and 12-token replies to
    # 4 x 64 prompts leave the quantized model's refusal bias on unseen prompts loose. 0: off.
    opening_prompts_per_file: int = 0
    held_out: float = 0.1  # fraction of prompts kept out of training, for the KL reported before and after
    seed: int = 0
    bf16: bool = True  # bfloat16 autocast for the frozen model's compute during training

    def __post_init__(self):
        for name in ("steps", "batch_size", "prompts_per_file", "reply_tokens"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.opening_prompts_per_file < 0:
            raise UserError(f"--opening-prompts-per-file must be >= 0, got {self.opening_prompts_per_file}")
        if not 0 < self.held_out < 1:
            raise UserError(f"held_out must be in (0, 1), got {self.held_out}")


@dataclass(frozen=True)
class CalibratedPrefix:
    kv: KV
    simulation: QuantSim
    soft_prompt_sha256: str
    held_out_kl_before: float  # KL(fp32 student || simulated quantized model) per reply token, fp32 prefix
    held_out_kl_after: float  # the same with the K/V this holds
    config: dict
    rejected_held_out_kl: float | None = None  # a fit that did worse than the folded prefix, which this then holds


@dataclass(frozen=True)
class _Target:
    prompt_ids: list[int]
    reply: list[int]
    log_probs: torch.Tensor  # [len(reply), vocab], bf16: the fp32 student's, teacher-forced


def _targets(model: nn.Module, kv: KV, prompts: list[list[int]], reply_tokens: int, stop: set[int],
             batch_size: int) -> list[_Target]:
    """The fp32 student's greedy replies; the logits that chose each reply token are its distributions."""
    replies = greedy_batch(model, prompts, reply_tokens, stop, kv=kv, batch_size=batch_size, keep_logits=True,
                           desc="fp32 replies")
    return [_Target(p, r.tokens, r.logits.log_softmax(-1).to(torch.bfloat16)) for p, r in zip(prompts, replies)]


def _kl(model: nn.Module, kv: KV, batch: list[_Target], bf16: bool) -> torch.Tensor:
    """KL(fp32 student || model with prefix `kv`), mean over reply tokens; one right-padded forward."""
    seqs = [t.prompt_ids + t.reply for t in batch]
    width, n_prefix = max(map(len, seqs)), kv[0][0].shape[1]
    ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * (n_prefix + len(s)) + [0] * (width - len(s)) for s in seqs])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        body = getattr(model, model.base_model_prefix)
        hidden = body(input_ids=ids, attention_mask=mask, past_key_values=expand_cache(model, kv, len(batch))).last_hidden_state
        rows = torch.cat([hidden[j, len(t.prompt_ids) - 1: len(t.prompt_ids) - 1 + len(t.reply)]
                          for j, t in enumerate(batch)])
        log_q = model.get_output_embeddings()(rows).float().log_softmax(-1)
    log_p = torch.cat([t.log_probs for t in batch]).float()
    return (log_p.exp() * (log_p - log_q)).sum() / len(rows)


@torch.no_grad()
def _mean_kl(model: nn.Module, kv: KV, targets: list[_Target], config: PrefixCalibration) -> float:
    """_kl over all of `targets`, in batches, weighted by reply tokens."""
    total = 0.0
    for i in range(0, len(targets), config.batch_size):
        chunk = targets[i:i + config.batch_size]
        total += _kl(model, kv, chunk, config.bf16).item() * sum(len(t.reply) for t in chunk)
    return total / sum(len(t.reply) for t in targets)


def calibrate_prefix(base: BaseModel, soft_prompt: SoftPrompt, sim: QuantSim, prompts: list[str],
                     config: PrefixCalibration = PrefixCalibration(),
                     opening_prompts: list[str] = ()) -> CalibratedPrefix:
    """Fit the prefix K/V so the simulated quantized model matches the fp32 student on `prompts` (replies of
    `config.reply_tokens`) and, when given, on the first reply token of `opening_prompts`."""
    model = base.model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    fp32_kv = prefix_cache(model, soft_prompt.embeddings)
    stop = set(eos_ids(base))

    def held_and_train(texts: list[str], reply_tokens: int) -> tuple[list[_Target], list[_Target]]:
        ids = _shuffled(base, texts, config.seed)
        return _split(_targets(model, fp32_kv, ids, reply_tokens, stop, config.batch_size), config.held_out)

    held, train = held_and_train(prompts, config.reply_tokens)
    open_held, open_train = held_and_train(list(opening_prompts), 1) if opening_prompts else ([], [])
    scales = [(k.std(), v.std()) for k, v in fp32_kv]
    offsets = [(torch.zeros_like(k, requires_grad=True), torch.zeros_like(v, requires_grad=True)) for k, v in fp32_kv]
    optimizer = torch.optim.Adam([t for pair in offsets for t in pair], lr=config.lr)

    def current() -> KV:
        return [(k + sk * dk, v + sv * dv) for (k, v), (sk, sv), (dk, dv) in zip(fp32_kv, scales, offsets)]

    batches = torch.Generator().manual_seed(config.seed)

    def batch_kl(targets: list[_Target], kv: KV) -> torch.Tensor:
        pick = torch.randint(len(targets), (config.batch_size,), generator=batches).tolist()
        return _kl(model, kv, [targets[i] for i in pick], config.bf16)

    rounded = gptq_for(base, soft_prompt, sim)  # the integers a gptq export will hold (deterministic)
    with simulated(model, sim, {n: w.dequantized() for n, w in rounded.items()} if rounded else None):
        before = _mean_kl(model, fp32_kv, held, config)
        open_before = _mean_kl(model, fp32_kv, open_held, config) if open_held else None
        bar = tqdm(range(config.steps), desc="calibrating prefix K/V", unit="step", leave=False)
        for _ in bar:
            kv = current()
            loss = batch_kl(train, kv) + (batch_kl(open_train, kv) if open_train else 0)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            bar.set_postfix(kl=f"{loss.item():.4f}")
        kv = [(k.detach(), v.detach()) for k, v in current()]
        after = _mean_kl(model, kv, held, config)
        open_after = _mean_kl(model, kv, open_held, config) if open_held else None
    record = {**asdict(config), "prompts": len(prompts), "opening_prompts": len(opening_prompts),
              "opening_held_out_kl": [open_before, open_after]}
    if after >= before:  # e.g. 8-bit weights: an error below the fit's own noise; never hand out a worse prefix
        return CalibratedPrefix(fp32_kv, sim, soft_prompt.sha256, before, before, record, rejected_held_out_kl=after)
    return CalibratedPrefix(kv, sim, soft_prompt.sha256, before, after, record)


def _shuffled(base: BaseModel, prompts: list[str], seed: int) -> list[list[int]]:
    ids = [chat_ids(base.tokenizer, p) for p in prompts]
    return [ids[i] for i in torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed)).tolist()]


def _split(targets: list[_Target], held_out: float) -> tuple[list[_Target], list[_Target]]:
    """(held out, training): a `held_out` fraction, at least one, kept out of the fit to report its KL."""
    n_held = max(1, round(held_out * len(targets)))
    return targets[:n_held], targets[n_held:] or targets[:n_held]


def save_prefix(prefix: CalibratedPrefix, path: Path) -> None:
    tensors = {f"{kind}.{i}": t.contiguous() for i, pair in enumerate(prefix.kv) for kind, t in zip("kv", pair)}
    meta = {"simulation": prefix.simulation.to_json(), "soft_prompt_sha256": prefix.soft_prompt_sha256,
            "held_out_kl_before": prefix.held_out_kl_before, "held_out_kl_after": prefix.held_out_kl_after,
            "config": prefix.config, "rejected_held_out_kl": prefix.rejected_held_out_kl}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, tmp, metadata={PREFIX_METADATA: json.dumps(meta, sort_keys=True)})
    tmp.replace(path)


def is_prefix_file(path: Path) -> bool:
    """Whether `path` is a file `save_prefix` wrote (its metadata says so): the one file calibrate-prefix replaces."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return PREFIX_METADATA in (f.metadata() or {})
    except (SafetensorError, OSError):  # not a safetensors file
        return False


def load_prefix(path: Path) -> CalibratedPrefix:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--prefix-kv {path}: file not found; write one with `softfold calibrate-prefix`")
    with safe_open(str(path), framework="pt") as f:
        meta = (f.metadata() or {}).get(PREFIX_METADATA)
        if meta is None:
            raise UserError(f"--prefix-kv {path} was not written by `softfold calibrate-prefix` (no metadata)")
        meta = json.loads(meta)
        layers = len([k for k in f.keys() if k.startswith("k.")])
        kv = [(f.get_tensor(f"k.{i}"), f.get_tensor(f"v.{i}")) for i in range(layers)]
    return CalibratedPrefix(kv, QuantSim.from_json(meta["simulation"]), meta["soft_prompt_sha256"],
                            meta["held_out_kl_before"], meta["held_out_kl_after"], meta["config"],
                            meta.get("rejected_held_out_kl"))  # absent from older files


def check_prefix(prefix: CalibratedPrefix, soft_prompt: SoftPrompt, sim: QuantSim | None, path: Path) -> None:
    """The file must belong to this soft prompt and recipe: a prefix fitted to other weights is a silent error."""
    if prefix.soft_prompt_sha256 != soft_prompt.sha256:
        raise UserError(f"--prefix-kv {path} was calibrated for another soft prompt (sha256 "
                        f"{prefix.soft_prompt_sha256[:12]}, this one is {soft_prompt.sha256[:12]}): re-run "
                        "`softfold calibrate-prefix` with this --soft-prompt")
    if sim != prefix.simulation:
        raise UserError(f"--prefix-kv {path} was calibrated for {prefix.simulation.to_json()}, this export quantizes "
                        f"as {sim.to_json() if sim else 'nothing (unquantized)'}: re-run `softfold calibrate-prefix` "
                        "with this export's --target / --recipe / --group-size / --embedding-bits / --keep-8bit / --algorithm")
