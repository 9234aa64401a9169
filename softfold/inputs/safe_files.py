"""Input files read safely: never a pickle (`.bin`, `.pt`, ... refused before anything reads them), JSON and
safetensors headers checked whole; each problem a one-line UserError naming the file."""
import json
from pathlib import Path

from safetensors import safe_open

from softfold.errors import UserError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def refuse_pickle(files: list[Path], what: str) -> None:
    pickles = [f.name for f in files if f.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise UserError(f"{what} holds pickle checkpoint(s) {pickles}; softfold never unpickles: "
                        "convert them to .safetensors first")


def read_json_object(path: Path, what: str) -> dict:
    """A JSON file that must hold an object, or a one-line UserError naming it."""
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{what} {path} is not valid JSON ({e}): restore or re-create it") from None
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} holds a JSON {type(data).__name__}, expected an object")
    return data


def check_safetensors(path: Path, what: str) -> list[str]:
    """The tensor names of a safetensors file whose header and size are whole; else a one-line UserError."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return list(f.keys())
    except Exception as e:  # safetensors raises its own SafetensorError (and OSError for unreadable files)
        raise UserError(f"{what} {path} is not a readable safetensors file ({e}): it may be truncated or "
                        "corrupt; copy or save it again") from None
