"""Outputs written whole: a scratch directory renamed into place only when complete, the last writer winning whole with
--force, the first without; a killed writer's scratch removed by the next."""
import os
import subprocess
import sys
import threading

import pytest

from softfold.errors import UserError
from softfold.files import atomic_dir


def listing(root) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_a_completed_block_replaces_the_previous_bundle_whole(tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (out / "old.txt").exists()  # the previous bundle stays until the new one is complete
    assert listing(tmp_path) == ["bundle", "bundle/new.txt"]
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask  # the user's umask, not mkdtemp's private 0700


def test_a_failed_block_leaves_the_previous_bundle_and_no_scratch(tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("export failed")
    assert listing(tmp_path) == ["bundle", "bundle/old.txt"]


def test_concurrent_writers_last_one_wins_whole(tmp_path):
    out = tmp_path / "bundle"
    with atomic_dir(out) as first, atomic_dir(out) as second:  # two scratch directories, distinct
        assert first != second
        (first / "a.txt").write_text("first")
        (second / "b.txt").write_text("second")
    # `second` finished first, then `first` replaced it: one whole bundle, no scratch left
    assert listing(tmp_path) == ["bundle", "bundle/a.txt"]


def test_scratch_of_a_killed_export_is_removed_by_the_next(tmp_path):
    out = tmp_path / "bundle"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".bundle.{dead.stdout.strip()}.x1.partial"
    stale.mkdir()
    live = tmp_path / f".bundle.{os.getpid()}.x2.partial"  # this process is alive: its scratch is kept
    live.mkdir()
    with atomic_dir(out) as tmp:
        (tmp / "f").write_text("")
    assert listing(tmp_path) == [live.name, "bundle", "bundle/f"]


def test_without_replace_the_first_writer_wins_and_the_second_leaves_nothing(tmp_path):
    out = tmp_path / "bundle"
    with pytest.raises(UserError, match="already exists .*pass --force"), atomic_dir(out, replace=False) as first:
        (first / "a.txt").write_text("first")
        with atomic_dir(out, replace=False) as second:  # finishes first: it wins
            (second / "b.txt").write_text("second")
    assert listing(tmp_path) == ["bundle", "bundle/b.txt"]


def test_two_concurrent_writers_without_replace_exactly_one_wins(tmp_path):
    """Both complete their scratch directories, then reach the final rename at once: the lock lets one in."""
    out, ready, outcomes = tmp_path / "bundle", threading.Barrier(2), []

    def write(name: str) -> None:
        try:
            with atomic_dir(out, replace=False) as tmp:
                (tmp / f"{name}.txt").write_text(name)
                ready.wait()
            outcomes.append(("won", name))
        except UserError as e:
            outcomes.append(("lost", str(e)))

    threads = [threading.Thread(target=write, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (won,) = [name for kind, name in outcomes if kind == "won"]
    (lost,) = [message for kind, message in outcomes if kind == "lost"]
    assert "already exists" in lost and "pass --force" in lost
    assert listing(tmp_path) == ["bundle", f"bundle/{won}.txt"]  # whole, and no scratch left
