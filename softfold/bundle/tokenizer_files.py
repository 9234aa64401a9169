"""A bundle's tokenizer files, as the phone runtimes read them."""
import json
from pathlib import Path


def save_tokenizer(tokenizer, out: Path) -> None:
    """tokenizer.json for the runtimes, plus tokenizer_config.json carrying the chat template."""
    tokenizer.save_pretrained(out)
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = tokenizer.chat_template
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
