"""The phone's prompt format: the chat template cut into per-role strings that rebuild its output; a template that
cannot be cut so is refused."""
import pytest
from tiny import make_tokenizer

from softfold.bundle.prompt_format import PromptFormat, derive, derive_prompt_format
from softfold.errors import UserError


def test_chatml_becomes_its_per_role_strings():
    fmt = derive_prompt_format(make_tokenizer())
    assert fmt == PromptFormat(preamble="", user_prefix="<|im_start|>user\n", user_suffix="<|im_end|>\n",
                               assistant_prefix="<|im_start|>assistant\n", assistant_suffix="<|im_end|>\n",
                               generation_prefix="<|im_start|>assistant\n")
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "bye"}]
    assert fmt.render(conversation) == make_tokenizer().apply_chat_template(conversation, add_generation_prompt=True,
                                                                            tokenize=False)
    assert set(fmt.to_json()) == {"preamble", "user_prefix", "user_suffix", "assistant_prefix", "assistant_suffix",
                                  "generation_prefix"}


def test_a_template_strings_cannot_rebuild_is_refused():
    def numbered(messages, add_generation_prompt):  # a turn counter: no fixed prefix per role can say it
        turns = "".join(f"[{i}] {m['role']}: {m['content']}\n" for i, m in enumerate(messages))
        return turns + ("assistant:" if add_generation_prompt else "")

    with pytest.raises(UserError, match="cannot be expressed as per-role prefix/suffix strings"):
        derive(numbered)
