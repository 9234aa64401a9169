"""`softfold run`'s message: the argument itself, or standard input's text for "-"; empty or non-UTF-8 input is one
line naming the fix."""
import io
import sys

import pytest

from softfold.cli.run import read_message
from softfold.errors import UserError


def stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_the_message_is_the_argument_or_standard_input(monkeypatch):
    assert read_message("How do I bake bread?") == "How do I bake bread?"
    stdin(monkeypatch, "  Héllo from a file\n".encode())
    assert read_message("-") == "Héllo from a file"


def test_empty_or_non_utf8_standard_input_is_refused(monkeypatch):
    stdin(monkeypatch, b"   \n")
    with pytest.raises(UserError, match="read an empty message from standard input"):
        read_message("-")
    stdin(monkeypatch, b"\xff\xfe bytes")
    with pytest.raises(UserError, match="is not UTF-8 text"):
        read_message("-")
