"""Prompt formatting: a user turn in the model's chat template (`chat_text`, `chat_ids`), and a Jinja-free
prompt format for phones, derived from the model's chat template and checked against it.

Android apps have no Jinja engine. softfold renders the template with marker messages, cuts the
result into per-role prefix/suffix strings, and then proves the strings rebuild the template's
output for probe conversations. A template that cannot be expressed this way is refused at export.
"""
from dataclasses import asdict, dataclass

from jinja2.exceptions import TemplateError

from softfold.errors import UserError

MARK = "\x00{}\x00"  # marker contents no real message contains


def chat_text(tokenizer, prompt: str) -> str:
    messages = [{"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def chat_ids(tokenizer, prompt: str) -> list[int]:
    """Token ids of `prompt` as the user's turn in the chat template, ready for the reply."""
    return tokenizer(chat_text(tokenizer, prompt), add_special_tokens=False)["input_ids"]


def end_of_turn_id(tokenizer) -> int | None:
    """The special token the chat template closes a reply with (ChatML's <|im_end|>, Gemma's <end_of_turn>): a
    model ends its turn by generating it, so generation stops there. None when the template closes replies with
    text, or with nothing."""
    reply = MARK.format("a1")
    try:
        messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": reply}]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        after = text[text.rindex(reply) + len(reply):]
    except (TemplateError, ValueError):  # a template that refuses a finished reply, or rewrites it
        return None
    ids = tokenizer(after, add_special_tokens=False)["input_ids"]
    token = tokenizer.added_tokens_decoder.get(ids[0]) if ids else None
    return ids[0] if token is not None and token.special else None


@dataclass(frozen=True)
class PromptFormat:
    preamble: str  # before the first user turn when the app sends no system message
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    assistant_suffix: str
    generation_prefix: str  # opens the reply the model writes

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt for a conversation of alternating user/assistant turns, ending with a user turn."""
        parts = [self.preamble]
        for m in messages:
            role = "user" if m["role"] == "user" else "assistant"
            parts += [getattr(self, f"{role}_prefix"), m["content"], getattr(self, f"{role}_suffix")]
        return "".join(parts) + self.generation_prefix

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def _between(text: str, start: str | None, end: str | None) -> str:
    a = 0 if start is None else text.index(start) + len(start)
    b = len(text) if end is None else text.index(end, a)
    return text[a:b]


def derive(render) -> PromptFormat:
    """`render(messages, add_generation_prompt)` is the chat template (transformers' apply_chat_template)."""
    u1, a1, u2 = MARK.format("u1"), MARK.format("a1"), MARK.format("u2")
    two_turns = render([{"role": "user", "content": u1}, {"role": "assistant", "content": a1},
                        {"role": "user", "content": u2}], True)
    one_turn = render([{"role": "user", "content": u1}], False)
    with_reply = render([{"role": "user", "content": u1}, {"role": "assistant", "content": a1}], False)
    user_suffix = _between(one_turn, u1, None)
    assistant_suffix = _between(with_reply, a1, None)
    user_prefix = _between(two_turns, a1, u2)[len(assistant_suffix):]
    head = _between(two_turns, None, u1)
    fmt = PromptFormat(
        preamble=head[: len(head) - len(user_prefix)] if head.endswith(user_prefix) else head,
        user_prefix=user_prefix if head.endswith(user_prefix) else "",
        user_suffix=user_suffix,
        assistant_prefix=_between(two_turns, u1, a1)[len(user_suffix):],
        assistant_suffix=assistant_suffix,
        generation_prefix=_between(two_turns, u2, None)[len(user_suffix):],
    )
    check(fmt, render)
    return fmt


PROBES = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Hi!\nTwo lines."}, {"role": "assistant", "content": "Hello. How can I help?"},
     {"role": "user", "content": "Tell me a joke."}],
]


def check(fmt: PromptFormat, render) -> None:
    for messages in PROBES:
        want, got = render(messages, True), fmt.render(messages)
        if want != got:
            raise UserError("the model's chat template cannot be expressed as per-role prefix/suffix strings "
                            f"(for {messages[-1]['content']!r} it renders {want!r}, the strings give {got!r}); "
                            "phones need that form: simplify the template")
