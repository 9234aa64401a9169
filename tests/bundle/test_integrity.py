"""Atomic bundle directories: whole or absent, scratch cleaned, concurrent writers resolved (the last one wins, or
without replacing, the first); verify reads only plain files inside the bundle."""
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import softfold.bundle.integrity
from softfold.bundle.integrity import MANIFEST, file_entries, verify, write_manifest
from softfold.files import atomic_dir, file_sha256
from softfold.cli.main import main
from softfold.errors import UserError


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


# --- verify: a bundle is plain files inside its directory -------------------------------------------------------

def intact_bundle(root: Path) -> Path:
    """A bundle of one file whose manifest lists it with its checksum (no other manifest fields: verify names those
    as schema problems, apart from the ones these tests look for)."""
    bundle = root / "bundle"
    bundle.mkdir()
    (bundle / "model.pte").write_bytes(b"program")
    write_manifest(bundle, {})
    return bundle


def listed(bundle, path: str, target) -> None:
    """The manifest lists `path` with `target`'s size and checksum, as a tampered manifest would."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"].append({"path": path, "size": target.stat().st_size, "sha256": file_sha256(target)})
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def hashed(monkeypatch) -> list[str]:
    """Every file verify hashes, recorded as it hashes it."""
    seen: list[str] = []
    real = softfold.bundle.integrity.file_sha256
    monkeypatch.setattr(softfold.bundle.integrity, "file_sha256", lambda path: seen.append(str(path)) or real(path))
    return seen


def test_verify_reports_a_link_out_of_the_bundle_and_never_hashes_its_target(tmp_path, monkeypatch, capsys):
    bundle, secret = intact_bundle(tmp_path), tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (bundle / "passwd").symlink_to(secret)
    listed(bundle, "passwd", secret)
    seen = hashed(monkeypatch)
    problems = verify(bundle)
    assert "passwd: a symbolic link, where a bundle holds plain files only" in problems
    assert not any(p.startswith("passwd: listed") or p.startswith("passwd: checksum") for p in problems)
    assert seen == [str(bundle / "model.pte")]  # the link's target is never read
    assert main(["verify", str(bundle)]) == 1
    out = capsys.readouterr()
    assert "DAMAGED" in out.out and "passwd: a symbolic link" in out.err


def test_verify_does_not_enter_a_linked_directory(tmp_path, monkeypatch):
    bundle, outside = intact_bundle(tmp_path), tmp_path / "etc"
    outside.mkdir()
    (outside / "shadow").write_text("secret\n")
    (bundle / "conf").symlink_to(outside, target_is_directory=True)
    listed(bundle, "conf/shadow", outside / "shadow")
    seen = hashed(monkeypatch)
    problems = verify(bundle)
    assert "conf: a symbolic link, where a bundle holds plain files only" in problems
    assert not any(p.startswith("conf/shadow") for p in problems) and seen == [str(bundle / "model.pte")]
    assert [e["path"] for e in file_entries(bundle)] == ["model.pte"]


@pytest.mark.parametrize("path", ["/etc/hostname", "../outside.txt", "a/../../outside.txt", "", "a\\..\\b"])
def test_verify_reports_a_listed_path_that_leaves_the_bundle(tmp_path, monkeypatch, path):
    bundle = intact_bundle(tmp_path)
    (tmp_path / "outside.txt").write_text("not the bundle's\n")
    listed(bundle, path, tmp_path / "outside.txt")
    seen = hashed(monkeypatch)
    assert f"{path!r}: listed outside the bundle directory" in verify(bundle)
    assert seen == [str(bundle / "model.pte")]


# --- two writers of one --out ---------------------------------------------------------------------------------------

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
