"""Bundles (DESIGN.md section 3): atomic directories with a manifest of every file's checksum."""
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from softfold.errors import UserError
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


@dataclass(frozen=True)
class OutputKind:
    """What a command writes into its --out directory, so that it writes only a new directory or a previous output of
    its own kind. `is_own(dir)` tells a previous output; `replace_flag` is the flag a previous one needs to be
    replaced (None: it is reused, e.g. resumed)."""
    name: str  # e.g. "softfold bundle"
    is_own: Callable[[Path], bool]
    marks: str  # what `is_own` looks for, for the message: "manifest.json"
    replace_flag: str | None = "--force"
    fix: str = "choose another --out"  # said when an existing directory is not of this kind


BUNDLE = OutputKind("softfold bundle", lambda d: (d / MANIFEST).is_file(), MANIFEST,
                    fix="--force replaces only a previous bundle; choose another --out")


def check_out(out: Path, inputs: list[Path], force: bool = False, kind: OutputKind = BUNDLE,
              flag: str = "--out") -> None:
    """Refuse an --out whose writing could lose the user's data: a file, the working directory or one above it, an
    input or a directory holding one, or an existing directory that is not a previous output of `kind` (and, where
    `kind` has a replace flag, any existing directory without that flag)."""
    out, where = Path(out), Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out} is a file: pass a directory for the {kind.name}")
    if where == Path.cwd().resolve() or where in Path.cwd().resolve().parents:
        raise UserError(f"{flag} {out} is the working directory or holds it: pass a new directory, e.g. "
                        f"{out}/output")
    for path in inputs:
        if where == Path(path).resolve() or where in Path(path).resolve().parents:
            raise UserError(f"{flag} {out} is or holds the input {path}: choose another {flag}")
    if not out.exists():
        return
    if kind.replace_flag and not force:
        raise UserError(f"output directory {out} already exists: pass {kind.replace_flag} to replace it, or choose "
                        f"another {flag}")
    if any(out.iterdir()) and not kind.is_own(out):
        raise UserError(f"{flag} {out} exists and is not a {kind.name} (no {kind.marks}): {kind.fix}")


def check_out_file(out: Path, inputs: list[Path], is_own: Callable[[Path], bool], flag: str, kind: str) -> None:
    """Refuse an output file that is a directory, an input or inside one, or an existing file not written by this
    command (its own kind, `is_own`), and one whose directory cannot be made."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"{flag} {out} is a directory: pass a file path for the {kind}")
    existing = next(p for p in out.absolute().parents if p.exists())
    if not existing.is_dir():
        raise UserError(f"{flag} {out}: {existing} is a file, not a directory; pick another path")
    for path in inputs:
        if out.resolve() == Path(path).resolve() or Path(path).resolve() in out.resolve().parents:
            raise UserError(f"{flag} {out} is or lies inside the input {path}: pick another path")
    if out.exists() and not is_own(out):
        raise UserError(f"{flag} {out} exists and is not a {kind}: pick another path (only a previous {kind} is "
                        "replaced)")


@contextlib.contextmanager
def atomic_dir(out: Path, replace: bool = True) -> Iterator[Path]:
    """Yield a scratch directory beside `out`, unique to this process; it becomes `out` only if the block completes,
    and is removed on any failure. Concurrent writers of one `out`: with `replace`, the last one wins, whole;
    without it, the first one wins and the others fail (UserError) and leave nothing."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_scratch(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".partial", dir=out.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would make the bundle private to this user
    try:
        yield tmp
        _move_into_place(tmp, out, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _move_into_place(tmp: Path, out: Path, replace: bool) -> None:
    """Rename the complete scratch directory to `out`, under a lock on their directory held only while checking
    and renaming: two writers never interleave their checks and renames."""
    with _locked(out.parent):
        if out.exists() and not replace:
            raise UserError(f"output directory {out} already exists (another export wrote it meanwhile): pass "
                            "--force to replace it, or choose another --out")
        aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".old", dir=out.parent))
        try:
            with contextlib.suppress(FileNotFoundError):
                out.rename(aside / out.name)
            tmp.rename(out)
        finally:
            shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) on a directory, released when the block ends (or the process dies)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


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
