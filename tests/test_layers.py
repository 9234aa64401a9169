"""Dependencies run one way: foundations <- export <- calibrate <- distill <- application (pipeline, parity, engines,
bench, chat, demo, cli). A module may import its own layer and the layers below it, never one above; and only the
application layer imports softfold modules inside functions (the CLI, to load heavy runtimes per command), so no
lower module can hide a cycle in a function body. Static: every module is parsed with `ast`, nothing is imported.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("foundations", "export", "calibrate", "distill", "application")
FOUNDATIONS, EXPORT, CALIBRATE, DISTILL, APPLICATION = range(len(LAYERS))
# folder -> package (pyproject.toml's package-dir)
PACKAGES = {"softfold": "softfold", "softfold/cli": "softfold.cli", "softfold/data": "softfold.data", "export": "softfold.export",
            "calibrate": "softfold.calibrate", "distill": "softfold.distill"}
PACKAGE_LAYERS = {"softfold.data": FOUNDATIONS, "softfold.export": EXPORT, "softfold.calibrate": CALIBRATE, "softfold.distill": DISTILL,
                  "softfold.cli": APPLICATION}
# softfold/ holds both the bottom and the top: each of its modules is placed here (a new one must be too)
SOFTFOLD_LAYERS = {
    "softfold": FOUNDATIONS,
    "softfold.errors": FOUNDATIONS,
    "softfold.native_io": FOUNDATIONS,
    "softfold.load": FOUNDATIONS,
    "softfold.models": FOUNDATIONS,
    "softfold.gguf_cache": FOUNDATIONS,
    "softfold.gguf_header": FOUNDATIONS,
    "softfold.generate": FOUNDATIONS,
    "softfold.reference": FOUNDATIONS,
    "softfold.prompt_format": FOUNDATIONS,
    "softfold.virtual_tokens": FOUNDATIONS,
    "softfold.softprompt": FOUNDATIONS,
    "softfold.lora": FOUNDATIONS,
    "softfold.steering": FOUNDATIONS,
    "softfold.bundle": FOUNDATIONS,
    "softfold.manifest": FOUNDATIONS,
    "softfold.bundle_readme": FOUNDATIONS,
    "softfold.refusal": FOUNDATIONS,
    "softfold.provenance": FOUNDATIONS,
    "softfold.pipeline": APPLICATION,
    "softfold.parity": APPLICATION,
    "softfold.bundle_parity": APPLICATION,
    "softfold.engines": APPLICATION,
    "softfold.text_runner": APPLICATION,
    "softfold.genai_runner": APPLICATION,
    "softfold.chat": APPLICATION,
    "softfold.bench": APPLICATION,
    "softfold.bench_builder": APPLICATION,
    "softfold.bench_exports": APPLICATION,
    "softfold.bench_plot": APPLICATION,
    "softfold.bench_worker": APPLICATION,
    "softfold.demo": APPLICATION,
    "softfold.api": APPLICATION,
}


def modules() -> dict[str, Path]:
    """Every module of the four packages (their folders' own .py files; data scripts below them are not modules)."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def layer(module: str) -> int:
    if module in SOFTFOLD_LAYERS:
        return SOFTFOLD_LAYERS[module]
    for package, level in PACKAGE_LAYERS.items():
        if module == package or module.startswith(package + "."):
            return level
    raise KeyError(f"{module} has no layer: add it to SOFTFOLD_LAYERS in tests/test_layers.py")


def internal_imports(source: str, known: set[str]) -> list[tuple[int, str, bool, str]]:
    """(line, imported softfold module, inside a function, the statement) for each softfold import in `source`."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names if a.name.split(".")[0] == "softfold"]
            elif isinstance(child, ast.ImportFrom):
                assert child.level == 0, f"line {child.lineno}: relative import; softfold imports absolutely"
                module = child.module or ""
                targets = [] if module.split(".")[0] != "softfold" else [
                    f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in child.names]
            else:
                targets = []
            for target in dict.fromkeys(targets):
                found.append((child.lineno, target, inside, ast.unparse(child)))
            visit(child, inside)

    visit(ast.parse(source), False)
    return found


def violations(module: str, source: str, known: set[str]) -> list[str]:
    problems = []
    for line, target, inside, statement in internal_imports(source, known):
        if (module, target) == ("softfold", "softfold.api") and inside:
            continue  # the package's PEP 562 __getattr__: `softfold.fold` loads the API on first use
        if layer(target) > layer(module):
            problems.append(f"{module}:{line}: `{statement}` imports upward ({LAYERS[layer(module)]} -> "
                            f"{LAYERS[layer(target)]}): move the code it needs down, or this module up")
        elif inside and layer(module) != APPLICATION:
            problems.append(f"{module}:{line}: `{statement}` inside a function: import softfold modules at the top "
                            "(below the application layer a function-level import only hides a cycle)")
    return problems


def test_every_module_has_a_layer():
    missing = []
    for module in modules():
        try:
            layer(module)
        except KeyError as e:
            missing.append(str(e))
    assert not missing, "\n".join(missing)


def test_imports_run_one_way():
    known = set(modules())
    problems = [p for module, path in modules().items() for p in violations(module, path.read_text(), known)]
    assert not problems, "\n".join(problems)


def test_the_check_catches_upward_and_function_level_imports():
    known = set(modules())
    source = ("from softfold.errors import UserError\n"
              "from softfold import cli\n"
              "def f():\n"
              "    from softfold.export.fold import build_folded_model\n"
              "    import softfold.distill.recipe\n")
    problems = violations("softfold.calibrate.prompts", source, known)
    assert [p.split(":")[1] for p in problems] == ["2", "4", "5"]
    assert "application" in problems[0] and "inside a function" in problems[1] and "distill" in problems[2]
    assert violations("softfold.cli", source.replace("from softfold import cli\n", ""), known) == []
