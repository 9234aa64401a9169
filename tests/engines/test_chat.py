"""Chat with a bundle: its own chat template rendered as transformers renders it, messages that are not text or do
not fit refused before anything runs, timings from the runner's stats."""
import json

import pytest
from tiny import make_tokenizer

from softfold.engines.chat import _reply, check_prompt_files, check_text, format_prompt, line_of
from softfold.errors import UserError


@pytest.fixture
def bundle(tmp_path):
    """A bundle's tokenizer files and the manifest's context length, no model."""
    tokenizer = make_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 2, "model": {"context_length": 24}}))
    return tmp_path, tokenizer


def test_the_bundles_template_renders_as_transformers_does(bundle):
    path, tokenizer = bundle
    want = tokenizer.apply_chat_template([{"role": "user", "content": "Hi!"}], add_generation_prompt=True,
                                         tokenize=False)
    assert format_prompt(path, "Hi!") == want


def test_a_prompt_too_long_for_the_context_is_named_by_its_file_and_line(bundle, tmp_path):
    path, _ = bundle
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is the capital of France?\n" + "Tell me a story about the sea. " * 8 + "\n")
    lines = prompts.read_text().splitlines()
    check_prompt_files(path, [(prompts, lines[:1])])  # fits
    with pytest.raises(UserError, match=r"prompts.txt:2: the prompt takes \d+ tokens .* holds 24"):
        check_prompt_files(path, [(prompts, [line.strip() for line in lines])])
    assert line_of(prompts, "nowhere") == "?"


def test_a_message_that_is_not_text_is_refused():
    check_text("héllo 🙂")
    with pytest.raises(UserError, match="not valid UTF-8"):
        check_text("broken \udcff")


def test_timings_come_from_the_runners_stats():
    stats = {"inference_start_ms": 1000, "prompt_eval_end_ms": 1100, "first_token_ms": 1120,
             "inference_end_ms": 1500, "prompt_tokens": 50, "generated_tokens": 21}
    reply = _reply("hi", stats)
    assert (reply.time_to_first_token_ms, reply.prefill_tokens_per_s, reply.decode_tokens_per_s) == (120, 500.0, 50.0)
