"""Where a bundle's parts come from, for its model card: the base model's hub id and license, the soft prompt's
safety evaluation. Read from the inputs' own files (GGUF metadata, a model directory's README front matter,
the soft prompt's eval.json); nothing is fetched."""
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from softfold.inputs.gguf_header import gguf_metadata
from softfold.inputs.named_models import DEFAULT_GGUF

# The embedded default's GGUF names no repository; this is the model it was converted from.
DEFAULT_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
EVAL_FILE = "eval.json"  # `softfold eval --json`, kept beside a trained soft prompt
_HF_URL = re.compile(r"^https?://huggingface\.co/([\w.-]+/[\w.-]+)/?$")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class BaseModelFacts:
    hub_id: str | None  # "org/name" on the Hugging Face hub, when the model's files say
    license: str | None  # an SPDX-style id as the hub writes it ("apache-2.0"), when the model's files say


def base_model_facts(model: Path) -> BaseModelFacts:
    """The hub id and license the model's own files state; None for what they do not."""
    model = Path(model)
    if model.suffix == ".gguf":
        return _gguf_facts(model)
    card = _front_matter(model / "README.md")
    config = json.loads((model / "config.json").read_text()) if (model / "config.json").is_file() else {}
    hub_id = card.get("base_model") if isinstance(card.get("base_model"), str) else config.get("_name_or_path")
    return BaseModelFacts(hub_id if isinstance(hub_id, str) and _HUB_ID.match(hub_id) else None,
                          card.get("license") if isinstance(card.get("license"), str) else None)


def _gguf_facts(path: Path) -> BaseModelFacts:
    metadata = gguf_metadata(path)

    def text(key: str) -> str | None:
        value = metadata.get(key)
        return str(value) if value is not None else None

    urls = [text(k) for k in ("general.base_model.0.repo_url", "general.source.repo_url",
                               "general.source.huggingface.repository")]
    hub_ids = [m.group(1) for url in urls if url and (m := _HF_URL.match(url))]
    hub_id = hub_ids[0] if hub_ids else (DEFAULT_MODEL_ID if path.name == DEFAULT_GGUF else None)
    return BaseModelFacts(hub_id, text("general.license"))


def _front_matter(readme: Path) -> dict:
    if not readme.is_file():
        return {}
    match = re.match(r"^---\n(.*?)\n---\n", readme.read_text(encoding="utf-8", errors="replace"), re.S)
    try:
        data = yaml.safe_load(match.group(1)) if match else {}
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def eval_summary(soft_prompt_dir: Path) -> dict | None:
    """The soft prompt's own evaluation (eval.json beside it), per prompt set: its label, how many prompts, and the
    share handled correctly (refused when harmful, answered when benign); None when it carries none."""
    path = Path(soft_prompt_dir) / EVAL_FILE
    try:
        sets = json.loads(path.read_text())["soft_prompt"]
        return {name: {"label": s["label"], "prompts": len(s["prompts"]), "correct_rate": round(s["correct_rate"], 4)}
                for name, s in sets.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None
