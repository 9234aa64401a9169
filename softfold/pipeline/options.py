"""What one export is asked for: its inputs' paths, the recipe (its target with it), how the soft prompt is
folded, and the gate: the one config of `softfold export` and `softfold.fold`."""
from dataclasses import dataclass
from pathlib import Path

from softfold.export.config import Folding, QuantConfig, Recipe, Target
from softfold.parity.gate import GateConfig


@dataclass(frozen=True)
class ExportOptions:
    """One export: its inputs (a soft prompt, a LoRA adapter, steering vectors: any of them), its recipe (the target
    with it), how the soft prompt is folded, and its gate."""
    model: Path
    soft_prompt: Path | None  # a PEFT prompt-tuning directory
    out: Path
    quant: QuantConfig = QuantConfig()
    folding: Folding = Folding.PREFIX_KV
    max_context: int = 2048
    prefix_kv: Path | None = None  # prefix K/V calibrated to this recipe (`softfold calibrate-prefix`)
    gate: GateConfig = GateConfig()
    force: bool = False
    trust_base_model: bool = False  # export even when the soft prompt names another base model
    chat_template: Path | None = None  # a Jinja file replacing the model's chat template (needed when it has none)
    adapter: Path | None = None  # a PEFT LoRA directory, merged into the weights before folding and quantization
    steering_vector: Path | None = None  # a llama.cpp control-vector GGUF, its vectors added after their blocks
    base_only: bool = False  # nothing added: the recipe's program of the base model alone (a cost anchor)

    def __post_init__(self):
        object.__setattr__(self, "quant", self.quant.resolved(self.folding))

    @property
    def target(self) -> Target:
        return self.quant.target

    @property
    def recipe(self) -> Recipe:
        return self.quant.recipe
