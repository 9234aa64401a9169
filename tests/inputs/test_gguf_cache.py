"""The dequantized-GGUF cache: keyed by the GGUF file's sha256, an entry counts only when complete."""
import hashlib

from softfold.inputs import gguf_cache


def test_cache_key_is_the_files_sha256_and_changes_with_its_content(tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    key = gguf_cache.cache_key(gguf)
    assert key == hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert gguf_cache.entry_dir(gguf, tmp_path / "c") == tmp_path / "c" / "dequantized" / key
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 65)  # replaced: a new size and modification time
    assert gguf_cache.cache_key(gguf) == hashlib.sha256(gguf.read_bytes()).hexdigest() != key


def test_an_entry_counts_only_when_complete(tmp_path):
    entry = tmp_path / "entry"
    entry.mkdir()
    (entry / "model.safetensors").write_bytes(b"")
    assert not gguf_cache.cached(entry)  # no config.json: a partial write never counts
    (entry / "config.json").write_text("{}")
    assert gguf_cache.cached(entry) and not gguf_cache.cached(tmp_path / "absent")
