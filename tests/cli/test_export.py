"""`softfold export`'s flags into one ExportOptions: the recipe validated, the paths typed, several prompt files."""
from pathlib import Path

import pytest

from softfold.cli.export import export_options
from softfold.cli.main import build_parser, main
from softfold.export.config import Algorithm, Recipe, Target


def test_the_flags_become_one_export_options():
    args = build_parser().parse_args(["export", "--model", "m/", "--soft-prompt", "p/", "--out", "o/", "--target",
                                      "onnx", "--recipe", "int4", "--keep-8bit", "lm_head", "--chat-template", "t"])
    opts = export_options(args, max_context=64)
    assert (opts.model, opts.soft_prompt, opts.out, opts.chat_template) == (Path("m/"), Path("p/"), Path("o/"),
                                                                            Path("t"))
    assert (opts.target, opts.recipe, opts.quant.keep_8bit, opts.max_context) == (Target.ONNX, Recipe.INT4,
                                                                                  ("lm_head",), 64)
    assert opts.quant.algorithm is Algorithm.GRID and (opts.adapter, opts.steering_vector) == (None, None)


def test_prompts_take_several_files_and_a_single_file_flag_once():
    args = build_parser().parse_args(["export", "--soft-prompt", "p", "--out", "o", "--prompts", "a.txt", "--prompts",
                                      "b.jsonl"])
    assert args.prompts == ["a.txt", "b.jsonl"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "--out", "o", "--soft-prompt", "p", "--soft-prompt", "q"])


def test_a_bad_recipe_is_one_line_before_any_work(tmp_path, capsys):
    assert main(["export", "--soft-prompt", str(tmp_path), "--out", str(tmp_path / "o"), "--recipe", "int4"]) == 2
    assert "recipe int4 is not available for --target executorch" in capsys.readouterr().err
