"""A bundle's integrity (docs/bundle.md): manifest.json lists every file with its size and sha256; `verify`
re-checks them, the schema, and that the bundle is plain files inside its own directory."""
import contextlib
import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath
from typing import Iterator

from softfold.bundle.manifest import MANIFEST_SCHEMA, READABLE_VERSIONS, SCHEMA_VERSION, upgraded
from softfold.errors import UserError
from softfold.files import OutputKind, file_sha256

MANIFEST = "manifest.json"

TOOLS = ("softfold", "torch", "executorch", "transformers", "peft", "tokenizers", "onnx", "onnxruntime",
         "onnxruntime-genai")


def tool_versions() -> dict[str, str]:
    out = {}
    for name in TOOLS:
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def file_entries(bundle: Path) -> list[dict]:
    """Every regular file in the bundle but the manifest, by its path inside it. Symbolic links are never followed
    (a link could make a checksum of a file outside the bundle): `symlinks` lists them."""
    files = sorted(p for p in _walk(bundle) if p.is_file() and not p.is_symlink() and p.name != MANIFEST)
    return [{"path": p.relative_to(bundle).as_posix(), "size": p.stat().st_size, "sha256": file_sha256(p)}
            for p in files]


def symlinks(bundle: Path) -> list[str]:
    """The symbolic links inside the bundle (to files or directories), by their paths inside it."""
    return sorted(p.relative_to(bundle).as_posix() for p in _walk(bundle) if p.is_symlink())


def _walk(root: Path) -> Iterator[Path]:
    """Every entry under `root`, without descending into linked directories."""
    for where, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            yield Path(where) / name


def inside(listed: object) -> bool:
    """Whether a path the manifest lists names a place inside the bundle: relative, no '..', not empty."""
    if not isinstance(listed, str) or not listed or "\\" in listed:
        return False
    path = PurePosixPath(listed)
    return not path.is_absolute() and ".." not in path.parts and path.parts not in ((), (".",))


def write_manifest(bundle: Path, manifest: dict) -> None:
    manifest = {"schema_version": SCHEMA_VERSION, **manifest, "files": file_entries(bundle)}
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


BUNDLE = OutputKind("softfold bundle", lambda d: (d / MANIFEST).is_file(), MANIFEST,
                    fix="--force replaces only a previous bundle; choose another --out")


def read_manifest(bundle: Path) -> dict:
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise UserError(f"{bundle} is not a softfold bundle: no {MANIFEST}")
    try:
        return upgraded(json.loads(path.read_text()))
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e}): the bundle is damaged, export it again") from None


def schema_problems(data: dict, schema: dict, where: str = "") -> list[str]:
    problems = []
    for key, kind in schema.items():
        name = key.rstrip("?")
        if name not in data:
            if not key.endswith("?"):
                problems.append(f"manifest lacks {where}{name}")
        elif isinstance(kind, dict):
            problems += schema_problems(data[name], kind, f"{where}{name}.")
        elif not isinstance(data[name], kind) and not (kind is float and isinstance(data[name], int)):
            problems.append(f"manifest {where}{name} is {type(data[name]).__name__}, expected {kind.__name__}")
    known = {k.rstrip("?") for k in schema}
    problems += [f"manifest has {where}{k}, which the schema does not define" for k in data if k not in known]
    return problems


def verify(bundle: Path) -> list[str]:
    """Problems found in the bundle: schema, missing, extra or changed files, symbolic links, listed paths that
    leave the bundle. Empty means intact. Only regular files inside the bundle are ever read."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    problems = schema_problems(manifest, MANIFEST_SCHEMA)
    if manifest.get("schema_version") != SCHEMA_VERSION:  # a readable older version was upgraded on reading
        problems.append(f"schema_version is {manifest.get('schema_version')!r}; this softfold reads "
                        f"{' and '.join(map(str, READABLE_VERSIONS))}")
    links = symlinks(bundle)
    problems += [f"{link}: a symbolic link, where a bundle holds plain files only" for link in links]
    entries = [f for f in manifest.get("files", []) if isinstance(f, dict)]
    problems += [f"{f.get('path')!r}: listed outside the bundle directory" for f in entries
                 if not inside(f.get("path"))]
    listed = {f["path"]: f for f in entries if inside(f.get("path"))}
    actual = {e["path"]: e for e in file_entries(bundle)}
    for path, entry in listed.items():
        got = actual.get(path)
        if _under(path, links):
            continue  # reported as a link
        if got is None:
            problems.append(f"{path}: listed in the manifest but missing")
        elif (got["size"], got["sha256"]) != (entry.get("size"), entry.get("sha256")):
            problems.append(f"{path}: checksum differs from the manifest (changed after export)")
    problems += [f"{path}: present but not in the manifest" for path in sorted(actual.keys() - listed.keys())]
    return problems


def _under(path: str, links: list[str]) -> bool:
    """Whether `path` is one of the links or lies in a linked directory."""
    return any(path == link or path.startswith(link + "/") for link in links)
