"""docs/commands.md against the parsers: each command's section names every flag the command takes, and no flag it
does not; every docstring points to the project's own docs, never to a contract outside it."""
import argparse
import re
from pathlib import Path

from softfold.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]


def sections() -> dict[str, str]:
    """Each command's section of docs/commands.md, by command: its flag table names each flag in a row's first
    cell."""
    text = (ROOT / "docs" / "commands.md").read_text()
    parts = re.split(r"^## `softfold (\S+)`$", text, flags=re.M)
    return {parts[i]: parts[i + 1].split("\n## ", 1)[0] for i in range(1, len(parts), 2)}


def test_every_command_has_a_section_naming_all_its_flags():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    found = sections()
    assert set(found) == set(sub.choices)
    problems = []
    for name, parser in sub.choices.items():
        flags = {a.option_strings[-1] for a in parser._actions if a.option_strings} - {"--help", "--debug"}
        first_cells = [line.split("|")[1] for line in found[name].splitlines() if line.startswith("| `--")]
        named = {flag for cell in first_cells for flag in re.findall(r"`(--[a-z0-9-]+)", cell)}
        problems += [f"{name} {flag}: not in docs/commands.md" for flag in flags - named]
        problems += [f"{name} {flag}: docs/commands.md names it, the parser has no such flag" for flag in named - flags]
    assert problems == []


def test_docstrings_point_into_the_project():
    cited = [f"{path.relative_to(ROOT)}" for folder in ("softfold", "export", "calibrate", "distill", "tests")
             for path in (ROOT / folder).rglob("*.py") if "DESIGN.md" in path.read_text() and path != Path(__file__)]
    assert cited == []
    for page in re.findall(r"docs/[a-z_/]+\.md", " ".join(p.read_text() for p in (ROOT / "softfold").rglob("*.py"))):
        assert (ROOT / page).is_file(), page
