"""Are two trees' exports the same bytes? The tiny llama of tests/tiny.py exported to executorch fp32 and 8da4w and
onnx fp32 and int4 by one tree's code, then the bundles of two such runs compared file by file.

    python benchmarks/byte_identity.py export --python TREE_VENV/bin/python --work DIR/before
    python benchmarks/byte_identity.py export --python .venv/bin/python --work DIR/after
    python benchmarks/byte_identity.py compare DIR/before DIR/after

`export` runs `python -m softfold.cli export` with the given interpreter (so the tree installed in that venv does the
work), from the run's own directory (the interpreter's working directory is never a tree). The inputs (model and soft
prompt) are built once, beside the run directories, so both runs read the same paths. `compare` prints a line per
file: same, differs, or only on one side; a differing JSON file also says which keys differ. Exit 0 when every file
is the same bytes, or differs only in paths the manifest records (the bundle's own directory); else 1.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
EXPORTS = {  # bundle name -> export flags
    "executorch-fp32": ["--target", "executorch", "--recipe", "fp32"],
    "executorch-8da4w": ["--target", "executorch", "--recipe", "8da4w"],
    "onnx-fp32": ["--target", "onnx", "--recipe", "fp32"],
    "onnx-int4": ["--target", "onnx", "--recipe", "int4"],
}
MAX_CONTEXT = "160"


def build_inputs(inputs: Path) -> tuple[Path, Path]:
    """The tiny llama and a 16-token soft prompt (tests/tiny.py, seeded), built once under `inputs`."""
    model, prompt = inputs / "llama", inputs / "prompt-16"
    if not (prompt / "adapter_model.safetensors").exists():
        sys.path.insert(0, str(TESTS))
        from tiny import make_model_dir, make_soft_prompt_dir

        make_model_dir(model, "llama")
        make_soft_prompt_dir(prompt, model, 16, seed=16)
    return model, prompt


def export_all(python: str, work: Path) -> int:
    """Every bundle of EXPORTS not yet in `work`, exported by `python`'s softfold; the first exit code other than 0
    and 1 (a failed gate still writes its bundle: the random tiny model fails the 4-bit gates), or 0."""
    model, prompt = build_inputs(work.resolve().parent / "inputs")
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    for name, flags in EXPORTS.items():
        if (work / name / "manifest.json").is_file():
            continue
        argv = [python, "-m", "softfold.cli", "export", "--model", str(model), "--soft-prompt", str(prompt),
                "--out", str(work / name), "--max-context", MAX_CONTEXT, *flags]
        print("+", " ".join(argv[2:]), flush=True)
        code = subprocess.run(argv, cwd=work, env=env).returncode
        print(f"exit {code}", flush=True)
        if code not in (0, 1):
            return code
    return 0


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def json_paths_differ(a: object, b: object, where: str = "") -> list[str]:
    """The keys (dotted) at which two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(a.keys() | b.keys())
                for d in json_paths_differ(a.get(key), b.get(key), f"{where}.{key}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in json_paths_differ(x, y, f"{where}[{i}]")]
    return [] if a == b else [where or "."]


def compare_file(before: Path, after: Path, run_dirs: tuple[Path, Path]) -> tuple[bool, str]:
    """(acceptable, what): same bytes; or, for text, the same once each run's directory is written as <RUN>."""
    if sha256(before) == sha256(after):
        return True, "same"
    if before.suffix in (".json", ".md"):
        texts = [p.read_text().replace(str(run.resolve()), "<RUN>") for p, run in zip((before, after), run_dirs)]
        if texts[0] == texts[1]:
            return True, "same but for the run directory's path"
        if before.suffix == ".json":
            return False, "differs at " + ", ".join(json_paths_differ(*map(json.loads, texts)))
    return False, "differs"


def compare(before: Path, after: Path) -> int:
    ok = True
    for name in EXPORTS:
        a, b = before / name, after / name
        files = sorted({p.relative_to(a) for p in a.rglob("*") if p.is_file()}
                       | {p.relative_to(b) for p in b.rglob("*") if p.is_file()})
        for rel in files:
            if not (a / rel).exists() or not (b / rel).exists():
                ok, what = False, f"only in {'after' if (b / rel).exists() else 'before'}"
            else:
                same, what = compare_file(a / rel, b / rel, (before, after))
                ok = ok and same
            print(f"{name}/{rel}: {what}  {sha256(a / rel)[:16] if (a / rel).exists() else '-'}")
    print("IDENTICAL" if ok else "DIFFERENT")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("export", help="export every bundle with one tree's interpreter")
    run.add_argument("--python", default=sys.executable, help="the interpreter whose softfold exports")
    run.add_argument("--work", type=Path, required=True, help="a new directory for this run's bundles")
    both = sub.add_parser("compare", help="compare two runs' bundles file by file")
    both.add_argument("before", type=Path)
    both.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "export":
        return export_all(args.python, args.work)
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
