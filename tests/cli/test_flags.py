"""The flags: one definition and one meaning per flag name, shared where commands share it; each flag's help at most
two lines of an 80-column terminal; the flag types refuse what the commands cannot use."""
import argparse
import math
import re

import pytest

from softfold.cli.flags import FRACTION, Once, finite_number, nonnegative_int, positive_int
from softfold.cli.main import build_parser

DEFAULT = re.compile(r"\s*\(default: [^()]*(\([^()]*\)[^()]*)*\)$")  # a command's own default, said last


def subcommands(width: int = 80) -> dict[str, argparse.ArgumentParser]:
    import os

    os.environ["COLUMNS"] = str(width)  # argparse reads the terminal's width when it formats
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def help_lines(parser: argparse.ArgumentParser, action: argparse.Action) -> int:
    formatter = parser._get_formatter()
    formatter.add_argument(action)
    lines = formatter.format_help().rstrip("\n").split("\n")
    inline = len(formatter._format_action_invocation(action)) + 2 < formatter._action_max_length
    return len(lines) if inline else len(lines) - 1


def test_every_flags_help_fits_two_lines(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    long = {f"{name} {action.option_strings[-1]}": help_lines(p, action)
            for name, p in subcommands().items() for action in p._actions
            if action.option_strings and action.help and help_lines(p, action) > 2}
    assert long == {}


def test_a_flag_shared_by_commands_is_one_definition(monkeypatch):
    """Same help (but for the command's default, said last), type, choices, nargs, metavar and action."""
    monkeypatch.setenv("COLUMNS", "80")
    seen: dict[str, dict[str, tuple]] = {}
    for name, p in subcommands().items():
        for action in p._actions:
            if action.option_strings and action.dest != "help":
                shape = (DEFAULT.sub("", action.help or ""), getattr(action.type, "__name__", action.type),
                         tuple(action.choices or ()), action.nargs, action.metavar, type(action).__name__)
                seen.setdefault(action.option_strings[-1], {})[name] = shape
    differing = {flag: commands for flag, commands in seen.items() if len(set(commands.values())) > 1}
    assert differing == {}


def test_the_number_types_refuse_what_no_command_can_use():
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int("0")
    with pytest.raises(argparse.ArgumentTypeError):
        nonnegative_int("-1")
    assert nonnegative_int("0") == 0
    for bad in ("nan", "inf", "-0.1", "1.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            FRACTION(bad)
    assert FRACTION("0.97") == 0.97
    with pytest.raises(argparse.ArgumentTypeError, match="other than 0"):
        finite_number(nonzero=True)("0")
    assert finite_number(0, low_open=True)("1e-3") == 1e-3 and not math.isnan(FRACTION("1"))


def test_a_once_flag_given_twice_is_refused():
    p = argparse.ArgumentParser(exit_on_error=False)
    p.add_argument("--soft-prompt", action=Once)
    with pytest.raises(argparse.ArgumentError, match="given twice"):
        p.parse_args(["--soft-prompt", "a", "--soft-prompt", "b"])
