"""PEFT LoRA adapters, the paper's baseline (docs/inputs.md): checked against the base model before any heavy
work, merged into a copy of its weights for export, and applied unmerged (as PEFT computes them) for the parity
reference.

An adapter is the directory PEFT's save_pretrained writes: adapter_config.json (`peft_type: LORA`, `r`,
`lora_alpha`, `target_modules`) and adapter_model.safetensors holding `<module>.lora_A.weight` [r, in] and
`<module>.lora_B.weight` [out, r] per adapted module. Merged, each adapted Linear's weight is W + (alpha / r) B A.
"""
import copy
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from softfold.errors import UserError
from softfold.files import file_sha256
from softfold.inputs.base_model import BaseModel
from softfold.inputs.safe_files import check_safetensors, read_json_object, refuse_pickle
from softfold.inputs.trained_for import TrainedFor

CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
ALL_LINEAR = "all-linear"  # PEFT's target_modules for every Linear but the LM head
_LORA_TENSOR = re.compile(r"^(?:base_model\.model\.)?(.+)\.lora_(A|B|embedding_A|embedding_B)(?:\.\w+)?(?:\.weight)?$")
# LoRA options whose merge the export graphs cannot hold: (adapter_config.json key, what it does)
UNSUPPORTED = (("layer_replication", "repeats decoder layers"), ("lora_bias", "adds a bias to the adapted Linears"),
               ("target_parameters", "adapts raw parameters (MoE experts)"))


@dataclass(frozen=True)
class LoraAdapter:
    path: Path
    rank: int
    alpha: float
    target_modules: tuple[str, ...]  # as adapter_config.json states them (names or a pattern), sorted
    modules: tuple[str, ...]  # the modules its weights adapt, by the model's names
    sha256: dict[str, str]  # of each of its files
    trained_for: TrainedFor = TrainedFor(None)  # the base model its adapter_config.json names

    def record(self) -> dict:
        """The manifest's `adapter` section."""
        return {"peft_type": "LORA", "source": str(self.path), "rank": self.rank, "alpha": self.alpha,
                "target_modules": list(self.target_modules),
                "files": [{"path": name, "sha256": digest} for name, digest in self.sha256.items()]}


def load_lora(path: str | Path, config) -> LoraAdapter:
    """A PEFT LoRA adapter directory checked against the model of `config` (its modules and their shapes, built on
    the meta device: no weights are read); a one-line UserError naming the problem and the fix."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"--adapter {path} not found: pass a PEFT LoRA adapter directory (save_pretrained's)")
    if not (path / WEIGHTS_FILE).exists():
        refuse_pickle(list(path.iterdir()), f"adapter {path}")
        raise UserError(f"adapter {path} has no {WEIGHTS_FILE}: pass the directory PEFT's save_pretrained wrote")
    if not (path / CONFIG_FILE).exists():
        raise UserError(f"adapter {path} has no {CONFIG_FILE}: pass the directory PEFT's save_pretrained wrote")
    settings = read_json_object(path / CONFIG_FILE, "adapter config")
    if settings.get("peft_type") != "LORA":
        raise UserError(f"--adapter {path} is a {settings.get('peft_type')} adapter, expected LORA (a prompt-tuning "
                        "soft prompt goes to --soft-prompt)")
    for key, what in UNSUPPORTED:
        if settings.get(key):
            raise UserError(f"adapter {path}: {key} ({what}) is not supported by the export; train it without")
    rank, alpha = settings.get("r"), settings.get("lora_alpha")
    if not isinstance(rank, int) or rank < 1 or not isinstance(alpha, (int, float)):
        raise UserError(f"adapter {path} has r={rank!r}, lora_alpha={alpha!r}: expected a rank >= 1 and a number")
    modules, names = _check_weights(path, config)
    targets = settings.get("target_modules")
    targets = (targets,) if isinstance(targets, str) else tuple(sorted(targets or ()))
    _check_targets(path, settings.get("target_modules"), names, config.model_type)
    return LoraAdapter(path, rank, float(alpha), targets, modules,
                       {name: file_sha256(path / name) for name in (CONFIG_FILE, WEIGHTS_FILE)},
                       TrainedFor.stated_in(settings))


def _check_targets(path: Path, targets, names: list[str], model_type: str) -> None:
    """adapter_config.json's target_modules name modules the model has, as PEFT matches them (a list: exact names or
    name suffixes; a string: a regular expression over full names, or "all-linear"): the manifest records them."""
    if targets is None or targets == ALL_LINEAR:
        return
    if isinstance(targets, str):
        matched, missing = any(re.fullmatch(targets, name) for name in names), [targets]
    else:
        missing = [t for t in targets if not any(name == t or name.endswith("." + t) for name in names)]
        matched = not missing
    if not matched:
        ends = " ".join(sorted({n.rsplit(".", 1)[-1] for n in names}))
        raise UserError(f"adapter {path}: target_modules names {', '.join(map(str, missing))}, which this "
                        f"{model_type} model does not have (its modules end in {ends}): fix adapter_config.json, or "
                        "pass the model it was trained for")


def _check_weights(path: Path, config) -> tuple[tuple[str, ...], list[str]]:
    """The adapted modules, each one of the model's with the shapes its lora_A / lora_B need; and the names of the
    model's modules LoRA can adapt."""
    weights = path / WEIGHTS_FILE
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    check_safetensors(weights, "adapter weights")
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            match = _LORA_TENSOR.match(key)
            if match:
                pairs.setdefault(match[1], {})[match[2].removeprefix("embedding_")] = f.get_tensor(key)
    if not pairs:
        raise UserError(f"{weights} holds no LoRA tensors (*.lora_A.weight, *.lora_B.weight): it is not a LoRA "
                        "adapter's")
    model = _meta_model(config)
    shapes = {name: _in_out(m) for name, m in model.named_modules() if _in_out(m)}
    for name, pair in sorted(pairs.items()):
        if name not in shapes:
            ends = " ".join(sorted({n.rsplit(".", 1)[-1] for n in shapes}))
            raise UserError(f"adapter {path} adapts {name}, which this {config.model_type} model does not have (its "
                            f"modules end in {ends}): it was trained for another model; pass that one")
        (n_in, n_out), a, b = shapes[name], pair.get("A"), pair.get("B")
        if a is None or b is None or a.shape[1] != n_in or b.shape[0] != n_out or a.shape[0] != b.shape[1]:
            got = ", ".join(f"lora_{k} {list(t.shape)}" for k, t in sorted(pair.items()))
            raise UserError(f"adapter {path}: {name} has {got}, but this model's {name} maps {n_in} -> {n_out}: "
                            "it was trained for a base model of another shape; pass that model")
        if not all(torch.isfinite(t).all() for t in pair.values()):
            raise UserError(f"adapter {path}: {name} holds NaN or Inf values: retrain or re-save it")
    return tuple(sorted(pairs)), list(shapes)


def _meta_model(config) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def _in_out(module: torch.nn.Module) -> tuple[int, int] | None:
    """(inputs, outputs) of a module LoRA can adapt: a Linear's features, an embedding's rows and width."""
    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, torch.nn.Embedding):
        return module.num_embeddings, module.embedding_dim
    return None


def with_lora(model: torch.nn.Module, adapter: LoraAdapter) -> torch.nn.Module:
    """`model` with the adapter's LoRA layers in it, unmerged: what PEFT computes. Changes `model` in place."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter.path)).get_base_model().eval()


def merged(base: BaseModel, adapter: LoraAdapter | None) -> BaseModel:
    """`base` with the adapter merged into a copy of its weights (W + alpha / r B A), or `base` itself without one:
    what the export folds and quantizes. `base` is left as it was."""
    if adapter is None:
        return base
    from peft import PeftModel

    model = PeftModel.from_pretrained(copy.deepcopy(base.model), str(adapter.path)).merge_and_unload()
    return BaseModel(model.eval(), base.tokenizer)
