"""The model's chat template: the one a model's files carry, a file given in its place, or the one softfold
ships for a named model; and a user turn rendered with it."""
from pathlib import Path

from jinja2.exceptions import TemplateError

from softfold.errors import UserError
from softfold.inputs.gguf_header import gguf_metadata
from softfold.inputs.named_models import named_chat_template
from softfold.inputs.safe_files import read_json_object


def chat_template_text(path: str | Path, location: Path, kwargs: dict,
                       chat_template: str | Path | None) -> str | None:
    """The template replacing the model's own: the given file's, else the one softfold ships for a named model that
    has none; None keeps the model's. A one-line UserError when the model has none and none is given."""
    if chat_template is None and has_chat_template(location, kwargs):
        return None
    chat_template = chat_template or named_chat_template(Path(path))
    if chat_template is None:
        raise UserError(f"model {path} has no chat template: pass --chat-template FILE (a Jinja chat template "
                        "in the model's turn format)")
    return read_chat_template(Path(chat_template))


def has_chat_template(location: Path, kwargs: dict) -> bool:
    """The model's files carry a chat template: a GGUF's tokenizer.chat_template, a directory's
    tokenizer_config.json chat_template or chat_template.jinja. Read from the files, without loading the model."""
    if kwargs:
        return bool(gguf_metadata(Path(location) / kwargs["gguf_file"]).get("tokenizer.chat_template"))
    location = Path(location)
    if (location / "chat_template.jinja").is_file():
        return True
    config = location / "tokenizer_config.json"
    return config.is_file() and bool(read_json_object(config, "tokenizer config").get("chat_template"))


def read_chat_template(path: Path) -> str:
    """A --chat-template file's text, or a one-line UserError naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"--chat-template {path} not found: pass a Jinja chat template file") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as e:
        raise UserError(f"--chat-template {path} is not a readable text file ({type(e).__name__}): pass a Jinja "
                        "chat template file") from None
    if not text.strip():
        raise UserError(f"--chat-template {path} is empty: pass a Jinja chat template file")
    return text


def check_chat_template(tokenizer, path: str | Path) -> None:
    """The template renders a user turn in transformers' sandbox, as every later step needs."""
    try:
        tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    except TemplateError as e:
        raise UserError(f"model {path}: its chat template does not render ({type(e).__name__}: {e}); "
                        "fix chat_template in tokenizer_config.json") from None


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
