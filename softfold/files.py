"""Files softfold reads and writes: their sha256, directories written whole or not at all, and outputs that never
replace what a user owns (docs/commands.md, "What a command writes")."""
import contextlib
import fcntl
import glob
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from softfold.errors import UserError


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def check_out(out: Path, inputs: list[Path], kind: OutputKind, force: bool = False,
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
