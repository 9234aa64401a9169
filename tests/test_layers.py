"""Dependencies run one way: foundations <- export <- calibrate <- distill <- application. A layer is a few packages
(LAYERS); a module takes its package's layer, and softfold's own top-level modules (errors, native_io, files) are
foundations but for its face (__init__.py) and the API (api.py), which sit on top. A module may import its own layer
and those below it, never one above. An import of a softfold module inside a function is rare and says why in a
comment (the CLI's commands load torch only when they run): it never dodges a cycle. Static: every module is parsed
with `ast` (scripts/import_graph.py), nothing is imported.
"""
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from import_graph import imports, modules, package_dirs, why  # noqa: E402

LAYERS = {  # lowest first: the packages of each layer
    "foundations": ("softfold.inputs", "softfold.data", "softfold.reference", "softfold.bundle", "softfold.engines"),
    "export": ("softfold.export",),
    "calibrate": ("softfold.calibrate",),
    "distill": ("softfold.distill",),
    "application": ("softfold.parity", "softfold.pipeline", "softfold.bench", "softfold.cli"),
}
ORDER = list(LAYERS)
FACE = ("softfold", "softfold.api")  # the package's own face and the API: the top


def layer(module: str) -> str:
    """The layer of a module: its package's, the longest package that holds it."""
    if module in FACE:
        return "application"
    packages = {package: name for name, packages in LAYERS.items() for package in packages}
    holder = max((p for p in packages if module == p or module.startswith(p + ".")), key=len, default=None)
    if holder is None and module.count(".") == 1:
        return "foundations"  # a top-level module of softfold
    if holder is None:
        raise KeyError(f"{module} is in no layer: add its package to LAYERS in tests/test_layers.py")
    return packages[holder]


def violations(module: str, path: Path, known: set[str]) -> list[str]:
    problems = []
    source = path.read_text()
    for line, target, inside, statement in imports(path, known):
        if ORDER.index(layer(target)) > ORDER.index(layer(module)):
            problems.append(f"{module}:{line}: `{statement}` imports upward ({layer(module)} -> {layer(target)}): "
                            "move the code it needs down, or this module up")
        if inside and not why(source, line):
            problems.append(f"{module}:{line}: `{statement}` inside a function, with no comment saying why: import "
                            "it at the top (a function-level import only hides a cycle), or say why it waits")
    return problems


def test_every_package_has_a_layer():
    """Each package pyproject.toml lists is in a layer, and every package folder is listed (else a wheel lacks it)."""
    listed = package_dirs()
    assert set(listed) - {"softfold"} == {p for packages in LAYERS.values() for p in packages}
    folders = {init.parent for folder in listed.values() for init in folder.rglob("__init__.py")}
    assert folders == set(listed.values())


def test_imports_run_one_way():
    known = modules()
    problems = [p for module, path in known.items() for p in violations(module, path, set(known))]
    assert not problems, "\n".join(problems)


def test_no_two_modules_share_a_basename():
    """One meaning per name: a module's file name says what it is, wherever it is imported from."""
    names: dict[str, list[str]] = {}
    for module, path in modules().items():
        if path.name not in ("__init__.py", "__main__.py"):
            names.setdefault(path.stem, []).append(module)
    assert {stem: found for stem, found in names.items() if len(found) > 1} == {}


def test_the_check_catches_upward_and_unexplained_function_level_imports(tmp_path):
    known = set(modules())
    source = tmp_path / "prompts.py"
    source.write_text("from softfold.errors import UserError\n"
                      "from softfold.cli import main\n"
                      "def f():\n"
                      "    from softfold.export.fold import build_folded_model\n"
                      "    import softfold.distill.recipe  # the recipe loads torch: only when asked\n")
    problems = violations("softfold.calibrate.prompts", source, known)
    assert [p.split(":")[1] for p in problems] == ["2", "4", "5"]
    assert "application" in problems[0] and "no comment" in problems[1] and "distill" in problems[2]
    assert violations("softfold.cli.export", source, known) == [problems[1].replace("softfold.calibrate.prompts",
                                                                                    "softfold.cli.export")]


def test_tests_mirror_the_tree():
    """Each module with logic (a function or a class) has its unit test file where its path says:
    softfold/inputs/lora.py -> tests/inputs/test_lora.py, softfold/api.py -> tests/test_api.py."""
    missing = []
    for module, path in modules().items():
        tree = ast.parse(path.read_text())
        if path.name.startswith("__") or not any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) for n in tree.body):
            continue
        folder = ROOT / "tests" / Path(*module.split(".")[1:-1])
        if not (folder / f"test_{path.stem}.py").is_file():
            missing.append(str((folder / f"test_{path.stem}.py").relative_to(ROOT)))
    assert missing == []
