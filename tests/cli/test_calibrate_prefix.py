"""`softfold calibrate-prefix`: export's recipe flags, its own file for --out, checked before any work."""
from softfold.cli.main import build_parser, main


def test_the_recipe_flags_are_exports():
    sub = build_parser()._subparsers._group_actions[0].choices
    recipe = {"--target", "--recipe", "--weight-bits", "--group-size", "--embedding-bits", "--keep-8bit", "--algorithm",
              "--offset-bits"}
    for name in ("export", "calibrate-prefix"):
        assert recipe <= {a.option_strings[-1] for a in sub[name]._actions if a.option_strings}


def test_out_is_a_new_file_never_an_input(tmp_path, capsys):
    prompt = tmp_path / "prompt"
    prompt.mkdir()
    argv = ["calibrate-prefix", "--soft-prompt", str(prompt), "--recipe", "8da4w", "--out"]
    assert main([*argv, str(prompt / "kv.safetensors")]) == 2
    assert "lies inside the input" in capsys.readouterr().err
    (tmp_path / "notes.safetensors").write_text("mine")
    assert main([*argv, str(tmp_path / "notes.safetensors")]) == 2
    assert "exists and is not a prefix K/V file" in capsys.readouterr().err
