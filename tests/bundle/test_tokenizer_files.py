"""A bundle's tokenizer files: tokenizer.json for the runtimes, tokenizer_config.json with the chat template."""
import json

from tiny import make_tokenizer

from softfold.bundle.tokenizer_files import save_tokenizer


def test_the_chat_template_rides_in_tokenizer_config_json(tmp_path):
    tokenizer = make_tokenizer()
    tokenizer.chat_template = "{{ messages[0]['content'] }}"
    save_tokenizer(tokenizer, tmp_path)
    assert (tmp_path / "tokenizer.json").is_file()
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["chat_template"] == "{{ messages[0]['content'] }}" and list(config) == sorted(config)
