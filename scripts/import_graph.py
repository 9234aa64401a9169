"""softfold's import graph, read from the source with `ast` (nothing is imported):

    python scripts/import_graph.py

Prints, package to package, how many import statements run from one package of softfold to another (a module
belongs to the package it sits in: `softfold.inputs.lora` to `softfold.inputs`; softfold's own top-level modules,
`softfold.errors` or `softfold.api`, stand for themselves),
then every import of a softfold module made inside a function, with the reason its comment gives.
"""
import ast
import sys
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_dirs() -> dict[str, Path]:
    """softfold's packages and their folders, as pyproject.toml lists and maps them."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = setuptools.get("package-dir", {})
    return {name: ROOT / mapped.get(name, name.replace(".", "/")) for name in setuptools["packages"]
            if name.split(".")[0] == "softfold"}


def modules() -> dict[str, Path]:
    """Every module of softfold's packages (each folder's own .py files), by its dotted name."""
    found = {}
    for package, folder in package_dirs().items():
        for path in sorted(folder.glob("*.py")):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def package_of(module: str, known: dict[str, Path]) -> str:
    """The package a module sits in; softfold's own top-level modules (errors, files, api, ...) stand for themselves."""
    package = module if known[module].name == "__init__.py" else module.rpartition(".")[0]
    return module if package == "softfold" else package


def imports(path: Path, known: set[str]) -> list[tuple[int, str, bool, str]]:
    """(line, softfold module imported, inside a function, the statement) for each softfold import in the file."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                targets = [f"{child.module}.{a.name}" if f"{child.module}.{a.name}" in known else child.module
                           for a in child.names]
            for target in dict.fromkeys(t for t in targets if t.split(".")[0] == "softfold"):
                found.append((child.lineno, target, inside, ast.unparse(child)))
            visit(child, inside)

    visit(ast.parse(path.read_text()), False)
    return found


def why(source: str, line: int) -> str:
    """The comment an import gives: on its own lines, or right above the block of imports it belongs to."""
    lines = source.splitlines()
    nodes = ast.walk(ast.parse(source))
    in_import = {i for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom))
                 for i in range(n.lineno, n.end_lineno + 1)}
    at = line
    while at in in_import:
        if "#" in lines[at - 1]:
            return lines[at - 1].partition("#")[2].strip()
        at -= 1
    return lines[at - 1].strip().lstrip("#").strip() if at >= 1 and lines[at - 1].strip().startswith("#") else ""


def main() -> int:
    known = modules()
    edges: Counter = Counter()
    inside = []
    for module, path in known.items():
        source = path.read_text()
        for line, target, in_function, statement in imports(path, set(known)):
            target = target if target in known else next(
                (m for m in sorted(known, key=len, reverse=True) if target.startswith(m + ".")), target)
            source_package = package_of(module, known)
            target_package = package_of(target, known) if target in known else target
            if source_package != target_package:
                edges[source_package, target_package] += 1
            if in_function:
                comment = why(source, line)
                inside.append(f"  {path.relative_to(ROOT)}:{line}  {statement}" + (f"  # {comment}" if comment else ""))
    print(f"package -> package (import statements), {len(known)} modules:")
    for (a, b), n in sorted(edges.items()):
        print(f"  {a} -> {b}  ({n})")
    print(f"\nsoftfold imports inside functions ({len(inside)}):")
    print("\n".join(inside) or "  none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
