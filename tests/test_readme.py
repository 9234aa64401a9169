"""The README's command list matches the parsers: every command is listed, and every flag it shows for a command is
one that command takes, with the same choices where it lists them."""
import argparse
import re
from pathlib import Path

from softfold.cli.export import add_export_arguments
from softfold.cli.main import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def command_lines() -> list[tuple[str, str]]:
    """(command, its text) for each command of the README's "## Commands" block; continuation lines join theirs."""
    block = README.read_text().split("## Commands", 1)[1].split("\n\n", 2)[1]
    commands: list[tuple[str, str]] = []
    for line in block.splitlines():
        code = line.split("#", 1)[0].strip()
        match = re.match(r"(softfold \S+|optimum-cli export softfold)", code)
        if match:
            commands.append((match[1].removeprefix("softfold ").replace("optimum-cli export softfold", "optimum-cli"),
                             code))
        elif commands and code:
            commands[-1] = (commands[-1][0], commands[-1][1] + " " + code)
    return commands


def parsers() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    optimum = argparse.ArgumentParser()
    add_export_arguments(optimum, positional_out=True)
    return {**sub.choices, "optimum-cli": optimum}


def test_every_command_is_listed():
    assert {name for name, _ in command_lines()} == set(parsers())


def test_every_flag_listed_is_the_commands_with_its_choices():
    problems = []
    for name, text in command_lines():
        flags = {a.option_strings[-1]: a for a in parsers()[name]._actions if a.option_strings}
        for flag, values in re.findall(r"(--[a-z0-9-]+)(?: ([a-z0-9.-]+(?:\|[a-z0-9.-]+)+))?", text):
            if flag not in flags:
                problems.append(f"{name} {flag}: no such flag")
            elif values and flags[flag].choices and not set(values.split("|")) <= set(map(str, flags[flag].choices)):
                problems.append(f"{name} {flag} {values}: choices are {flags[flag].choices}")
    assert problems == []
