"""Dequantized GGUF weights, cached as a Hugging Face model directory keyed by the GGUF file's sha256.

Dequantizing a large-vocabulary GGUF (gguf's numpy kernels) takes minutes; loading the fp32 safetensors it produced
takes seconds. The key is the file's content, so a changed or replaced file gets a new entry and never a stale one.
Entries are written to a scratch directory and renamed into place whole.
"""
import functools
from pathlib import Path

from softfold.files import atomic_dir, file_sha256

COMPLETE = "config.json"  # written by save_pretrained; an entry without it is ignored


def cache_key(gguf: Path) -> str:
    """The entry's name: the sha256 of the GGUF file's bytes (hashed once per process while the file's size and
    modification time stay the same)."""
    stat = Path(gguf).stat()
    return _sha256(Path(gguf).resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def entry_dir(gguf: Path, root: Path) -> Path:
    """Where the dequantized copy of `gguf` lives (or will) under `root`."""
    return Path(root) / "dequantized" / cache_key(gguf)


def cached(entry: Path) -> bool:
    return (Path(entry) / COMPLETE).is_file() and any(Path(entry).glob("*.safetensors"))


def save_entry(model, tokenizer, entry: Path) -> None:
    """The fp32 model (safetensors) and its tokenizer files at `entry`, renamed into place once complete."""
    with atomic_dir(Path(entry)) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
