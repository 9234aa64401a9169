"""Bundles (DESIGN.md section 3): atomic directories with a manifest of every file's checksum."""
import contextlib
import hashlib
import json
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Iterator

from softfold.errors import UserError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_KEYS = {"schema_version", "backend", "recipe", "model", "soft_prompt", "files", "tools", "parity"}
TOOLS = ("softfold", "torch", "executorch", "transformers", "peft", "tokenizers", "onnx", "onnxruntime",
         "onnxruntime-genai")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tool_versions() -> dict[str, str]:
    out = {}
    for name in TOOLS:
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def file_entries(bundle: Path) -> list[dict]:
    files = sorted(p for p in bundle.rglob("*") if p.is_file() and p.name != MANIFEST)
    return [{"path": p.relative_to(bundle).as_posix(), "size": p.stat().st_size, "sha256": file_sha256(p)}
            for p in files]


def write_manifest(bundle: Path, manifest: dict) -> None:
    manifest = {"schema_version": SCHEMA_VERSION, **manifest, "files": file_entries(bundle)}
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_dir(out: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary sibling of `out`; rename it into place only if the block completes."""
    out = Path(out)
    if out.exists() and not force:
        raise UserError(f"output directory {out} already exists: pass --force to replace it, or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.parent / f".{out.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        shutil.rmtree(old)
    tmp.rename(out)


def read_manifest(bundle: Path) -> dict:
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise UserError(f"{bundle} is not a softfold bundle: no {MANIFEST}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e}): the bundle is damaged, export it again") from None


def verify(bundle: Path) -> list[str]:
    """Problems found in the bundle: schema, missing, extra or changed files. Empty means intact."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    problems = []
    if manifest.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version is {manifest.get('schema_version')!r}, expected {SCHEMA_VERSION}")
    missing_keys = MANIFEST_KEYS - manifest.keys()
    if missing_keys:
        problems.append(f"manifest lacks {sorted(missing_keys)}")
    listed = {f["path"]: f for f in manifest.get("files", [])}
    actual = {e["path"]: e for e in file_entries(bundle)}
    for path, entry in listed.items():
        got = actual.get(path)
        if got is None:
            problems.append(f"{path}: listed in the manifest but missing")
        elif (got["size"], got["sha256"]) != (entry["size"], entry["sha256"]):
            problems.append(f"{path}: checksum differs from the manifest (changed after export)")
    problems += [f"{path}: present but not in the manifest" for path in actual.keys() - listed.keys()]
    return problems
