"""The chat template: the model's own, a file in its place, the one softfold ships for a named model; the token that
closes a reply."""
import json
from pathlib import Path

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from softfold.bundle.prompt_format import derive
from softfold.errors import UserError
from softfold.inputs.chat_template import chat_template_text, end_of_turn_id, has_chat_template
from softfold.inputs.named_models import NAMED_MODELS

GEMMA = NAMED_MODELS["gemma3-270m"]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SOFTFOLD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_model_without_a_template_needs_the_flag(tmp_path, cache):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<bos>"}))
    assert not has_chat_template(tmp_path, {})
    with pytest.raises(UserError, match=r"has no chat template: pass --chat-template FILE"):
        chat_template_text(tmp_path, tmp_path, {}, None)
    template = tmp_path / "turns.jinja"
    template.write_text("{{ messages[0]['content'] }}")
    assert chat_template_text(tmp_path, tmp_path, {}, template) == "{{ messages[0]['content'] }}"
    (tmp_path / "chat_template.jinja").write_text("own")
    assert chat_template_text(tmp_path, tmp_path, {}, None) is None  # the model's own is used as it is
    assert chat_template_text(tmp_path, tmp_path, {}, template).startswith("{{")  # the flag replaces it
    with pytest.raises(UserError, match=r"--chat-template .*absent.jinja not found"):
        chat_template_text(tmp_path, tmp_path, {}, tmp_path / "absent.jinja")


def gemma_like_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer with Gemma's special tokens and the shipped Gemma template."""
    specials = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"]
    vocab = {t: i for i, t in enumerate(specials + ["user", "model", "hi", "\n"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   additional_special_tokens=["<start_of_turn>", "<end_of_turn>"])
    fast.chat_template = (Path(__file__).parents[2] / "softfold/inputs/templates" / GEMMA.chat_template).read_text()
    return fast


def test_the_gemma_template_writes_gemmas_turns():
    tok = gemma_like_tokenizer()
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]
    assert tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")
    fmt = derive(lambda m, g: tok.apply_chat_template(m, add_generation_prompt=g, tokenize=False))
    assert (fmt.preamble, fmt.user_prefix, fmt.assistant_suffix, fmt.generation_prefix) == (
        "<bos>", "<start_of_turn>user\n", "<end_of_turn>\n", "<start_of_turn>model\n")
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # as softfold run renders it
    assert env.from_string(tok.chat_template).render(messages=messages[1:2], add_generation_prompt=True,
                                                     bos_token="<bos>") == fmt.render(messages[1:2])


def test_the_end_of_turn_token_is_the_one_closing_a_reply():
    tok = gemma_like_tokenizer()
    assert end_of_turn_id(tok) == tok.convert_tokens_to_ids("<end_of_turn>") != tok.eos_token_id
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"  # replies end with text
    assert end_of_turn_id(tok) is None
