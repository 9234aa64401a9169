"""`softfold sensitivity`: export's weight-grid flags (4 bits unless given), its report file checked first."""
from softfold.cli.main import build_parser, main


def test_the_weight_grid_flags_are_exports_and_default_to_4_bits():
    args = build_parser().parse_args(["sensitivity", "--soft-prompt", "p"])
    assert (args.weight_bits, args.group_size) == (None, 32)  # the command simulates 4 bits when none is given


def test_the_json_report_path_is_checked_before_the_model_loads(tmp_path, capsys):
    assert main(["sensitivity", "--soft-prompt", str(tmp_path), "--json", str(tmp_path)]) == 2
    assert "is a directory: pass a file path" in capsys.readouterr().err
