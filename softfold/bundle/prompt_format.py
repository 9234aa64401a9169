"""A Jinja-free prompt format for phones, derived from the model's chat template and checked against it.

Android apps have no Jinja engine. softfold renders the template with marker messages, cuts the
result into per-role prefix/suffix strings, and then proves the strings rebuild the template's
output for probe conversations. A template that cannot be expressed this way is refused at export.
"""
from dataclasses import asdict, dataclass

from softfold.errors import UserError
from softfold.inputs.chat_template import MARK


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


def derive_prompt_format(tokenizer) -> PromptFormat:
    """The prompt format of the tokenizer's chat template (transformers' apply_chat_template renders it)."""
    return derive(lambda messages, add_generation_prompt: tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=False))
