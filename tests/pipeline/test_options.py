"""One export's options: the recipe resolved for the folding (4-bit weights keep their grid with prefix-kv folding,
round to nearest with virtual tokens)."""
from pathlib import Path

from softfold.export.config import Algorithm, Folding, QuantConfig, Recipe, Target
from softfold.pipeline.options import ExportOptions


def test_the_recipes_algorithm_is_chosen_for_the_folding():
    quant = QuantConfig(Target.EXECUTORCH, Recipe.X8DA4W)
    prefix = ExportOptions(Path("m"), Path("p"), Path("out"), quant)
    virtual = ExportOptions(Path("m"), Path("p"), Path("out"), quant, folding=Folding.VIRTUAL_TOKENS)
    assert prefix.quant.algorithm is Algorithm.GRID and virtual.quant.algorithm is Algorithm.RTN
    assert (prefix.target, prefix.recipe) == (Target.EXECUTORCH, Recipe.X8DA4W)
    asked = ExportOptions(Path("m"), None, Path("out"), QuantConfig(Target.ONNX, Recipe.INT4, algorithm="hqq"))
    assert asked.quant.algorithm is Algorithm.HQQ  # what was asked for stays
