"""The manifest's record of how each weight was rounded: kept on its grid, by GPTQ, by the runtime's quantizer, or
at 8 bits; the source's storage type where a GGUF states it."""
import torch

from softfold.calibrate.rounding import rounding_record
from softfold.export.config import Algorithm, QuantConfig, Recipe, Target
from softfold.export.quantize import RoundedWeight


def test_each_linear_says_how_it_was_rounded():
    quant = QuantConfig(Target.EXECUTORCH, Recipe.X8DA4W, keep_8bit=("lm_head",), algorithm=Algorithm.GRID)
    grid = RoundedWeight(torch.zeros(4, 32, dtype=torch.int8), torch.ones(4, 1), torch.zeros(4, 1))
    gptq = RoundedWeight(torch.zeros(4, 32, dtype=torch.int8), torch.ones(4, 1))
    record = rounding_record(["layers.0.mlp.up_proj", "layers.0.mlp.down_proj", "layers.1.mlp.up_proj", "lm_head"],
                             quant, {"layers.0.mlp.up_proj": grid, "layers.0.mlp.down_proj": gptq},
                             {"layers.0.mlp.up_proj": "Q4_1", "embed_tokens": "Q8_0"})
    assert record["layers.0.mlp.up_proj"] == {"bits": 4, "rounding": "grid", "source_type": "Q4_1"}
    assert record["layers.0.mlp.down_proj"] == {"bits": 4, "rounding": "gptq"}
    assert record["layers.1.mlp.up_proj"] == {"bits": 4, "rounding": "rtn"}  # the runtime's own pass
    assert record["lm_head"] == {"bits": 8, "rounding": "rtn", "source_type": "Q8_0"}  # tied: the table's type
    assert record["embed_tokens"] == {"bits": 8, "rounding": "rtn", "source_type": "Q8_0"}
