"""Bundles (DESIGN.md section 3): atomic directories with a manifest of every file's checksum."""
import contextlib
import errno
import glob
import hashlib
import json
import os
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Iterator

from softfold.errors import EnvironmentFailure, UserError
from softfold.manifest import MANIFEST_SCHEMA, READABLE_VERSIONS, SCHEMA_VERSION, upgraded

MANIFEST = "manifest.json"
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


def check_out(out: Path, inputs: list[Path], force: bool) -> None:
    """Refuse an --out whose replacement could lose the user's data: a file, the working directory or one above it,
    an input or a directory holding one, or an existing directory (with --force: one that is not a bundle)."""
    out, where = Path(out), Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: pass a directory for the bundle")
    if where == Path.cwd().resolve() or where in Path.cwd().resolve().parents:
        raise UserError(f"--out {out} is the working directory or holds it: pass a new directory, e.g. {out}/bundle")
    for path in inputs:
        if where == Path(path).resolve() or where in Path(path).resolve().parents:
            raise UserError(f"--out {out} is or holds the input {path}: choose another --out")
    if not out.exists():
        return
    if not force:
        raise UserError(f"output directory {out} already exists: pass --force to replace it, or choose another --out")
    if any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise UserError(f"--out {out} exists and is not a softfold bundle (no {MANIFEST}): --force replaces only "
                        "a previous bundle; choose another --out")


@contextlib.contextmanager
def atomic_dir(out: Path) -> Iterator[Path]:
    """Yield a scratch directory beside `out`, unique to this process; it becomes `out` only if the block completes,
    and is removed on any failure. Concurrent writers of one `out`: the last one wins, whole."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_scratch(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".partial", dir=out.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would make the bundle private to this user
    try:
        yield tmp
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _move_into_place(tmp: Path, out: Path) -> None:
    for _ in range(5):
        aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".old", dir=out.parent))
        try:
            with contextlib.suppress(FileNotFoundError):
                out.rename(aside / out.name)
            tmp.rename(out)
            return
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        finally:
            shutil.rmtree(aside, ignore_errors=True)
    raise EnvironmentFailure(f"{out} kept being replaced while this export finished (other exports to it?): "
                             "run it again")


def _remove_stale_scratch(out: Path) -> None:
    """Scratch directories of exports to `out` whose process is gone (killed before it could clean up)."""
    for scratch in out.parent.glob(f".{glob.escape(out.name)}.*.*"):
        pid = scratch.name[len(out.name) + 2:].split(".")[0]
        if scratch.suffix in (".partial", ".old") and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(scratch, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # PermissionError: alive, another user's
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


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
    """Problems found in the bundle: schema, missing, extra or changed files. Empty means intact."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    problems = schema_problems(manifest, MANIFEST_SCHEMA)
    if manifest.get("schema_version") != SCHEMA_VERSION:  # a readable older version was upgraded on reading
        problems.append(f"schema_version is {manifest.get('schema_version')!r}; this softfold reads "
                        f"{' and '.join(map(str, READABLE_VERSIONS))}")
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
