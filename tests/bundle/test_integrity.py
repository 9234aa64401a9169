"""Atomic bundle directories: whole or absent, scratch cleaned, concurrent writers resolved (the last one wins, or
without replacing, the first); verify reads only plain files inside the bundle."""
import json
from pathlib import Path

import pytest

import softfold.bundle.integrity
from softfold.bundle.integrity import MANIFEST, file_entries, verify, write_manifest
from softfold.cli.main import main
from softfold.files import file_sha256


def listing(root) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))










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



