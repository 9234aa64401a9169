"""`softfold verify`: intact or damaged, and the gate's verdict recorded at export; exit 1 for damage."""
import json

from conftest import schema_sample

from softfold.bundle.integrity import write_manifest
from softfold.bundle.manifest import MANIFEST_SCHEMA
from softfold.cli.main import main


def bundle(path, passed: bool):
    """A bundle as verify sees it: a manifest of the schema, every file's checksum."""
    path.mkdir()
    (path / "model.pte").write_bytes(b"program")
    manifest = schema_sample(MANIFEST_SCHEMA)
    manifest["parity"]["passed"] = passed
    write_manifest(path, manifest)
    return path


def test_an_intact_bundle_exits_0_and_says_its_gate(tmp_path, capsys):
    failed = bundle(tmp_path / "b", passed=False)
    assert main(["verify", str(failed)]) == 0
    assert capsys.readouterr().out.endswith("intact; parity at export: FAILED\n")


def test_a_changed_file_exits_1_naming_it(tmp_path, capsys):
    damaged = bundle(tmp_path / "b", passed=True)
    (damaged / "model.pte").write_bytes(b"tampered")
    assert main(["verify", str(damaged)]) == 1
    out, err = capsys.readouterr()
    assert "DAMAGED" in out and "model.pte: checksum differs from the manifest" in err
    assert json.loads((damaged / "manifest.json").read_text())["parity"]["passed"]
