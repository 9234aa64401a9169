"""ExecuTorch's C++ TextLLMRunner (the engine under Android's LlmModule), driven robustly from Python.

The runner prints every generated piece to stdout itself, then a `PyTorchObserver {json}` stats
line. Its Python binding also offers a token callback, but (executorch 1.5.1) it decodes each
piece as strict UTF-8, so a character split across two tokens (emoji, accents) raises
UnicodeDecodeError and aborts generation. So we read the bytes it prints instead: whole
characters once joined, streamed through an incremental decoder. Its logs (stderr) are muted.
"""
import codecs
import json
import os
import threading
from pathlib import Path
from typing import Callable

from softfold.native_io import muted, native_output

STATS_MARKER = "\nPyTorchObserver "


def register_kernels() -> None:
    """The non-core kernels softfold's programs use; they must be registered before a program loads."""
    with muted():  # registration logs to stdout
        import executorch.kernels.quantized  # noqa: F401  (quantized embedding kernels)
        from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401  (llama::custom_sdpa kernels)


def load_text_runner(bundle: Path):
    """TextLLMRunner over the bundle's model.pte and tokenizer.json."""
    register_kernels()
    with muted():  # the runner's import and loader log to stdout too
        from executorch.extension.llm.runner import TextLLMRunner

        return TextLLMRunner(str(bundle / "model.pte"), str(bundle / "tokenizer.json"))


class RunnerText:
    """The text TextLLMRunner prints for a sequence of token ids: each token decoded alone by the same C++ tokenizer
    (pytorch_tokenizers' HFTokenizer), a piece of one byte dropped unless it is printable ASCII or whitespace (its
    safe_printf: that drops half a UTF-8 character and control codes), the rest printed and read back as UTF-8, an
    incomplete sequence as U+FFFD, as `greedy` reads it. The parity gate renders the reference's tokens so, to
    compare the engine's text with the reference's on equal terms."""

    def __init__(self, tokenizer_json: Path):
        with muted():  # the C++ library logs its regex setup
            from pytorch_tokenizers import CppHFTokenizer

            self.tokenizer = CppHFTokenizer()
            self.tokenizer.load(str(tokenizer_json))

    def piece(self, token: int) -> bytes:
        """The token's bytes as the runner's tokenizer decodes it (the binding hands back a piece that is not whole
        UTF-8 as the UnicodeDecodeError's bytes)."""
        try:
            return self.tokenizer.decode(token).encode("utf-8")
        except UnicodeDecodeError as e:
            return e.object

    def __call__(self, ids: list[int]) -> str:
        return b"".join(printed(self.piece(token)) for token in ids).decode("utf-8", errors="replace")


def printed(piece: bytes) -> bytes:
    """What the runner prints of a piece: a single byte only when it is printable ASCII or whitespace (C's isprint /
    isspace, in its safe_printf), a longer piece up to its first NUL (printf's %s)."""
    if len(piece) == 1:
        return piece if 32 <= piece[0] < 127 or piece[0] in b" \t\n\v\f\r" else b""
    return piece.split(b"\0", 1)[0]


def cut_at_stop(text: str, stop_strings: list[str]) -> str:
    """Text before the first stop string.

    TextLLMRunner (executorch 1.5.1) checks EOS only on decoded tokens, not on the token the prefill
    produces: when a reply's first token is end-of-turn it generates on. Apps stop there themselves.
    """
    cuts = [text.find(s) for s in stop_strings if s and s in text]
    return text[: min(cuts)] if cuts else text


def greedy(runner, prompt: str, max_new_tokens: int, stop_strings: list[str],
           on_text: Callable[[str], None] | None = None) -> tuple[str, dict]:
    """Greedy reply (before any stop string) and the runner's stats, streaming text to `on_text`."""
    from executorch.extension.llm.runner import GenerationConfig

    read_fd, write_fd = os.pipe()
    printed = bytearray()
    holdback = max([len(STATS_MARKER) + 1, *map(len, stop_strings)])
    streamed = _Streamer(on_text, holdback, [*stop_strings, STATS_MARKER])  # the stats line is never streamed

    def pump() -> None:
        while chunk := os.read(read_fd, 65536):
            printed.extend(chunk)
            streamed.feed(chunk)

    reader = threading.Thread(target=pump)
    reader.start()
    with native_output(write_fd):
        runner.reset()  # back to position 0; a folded soft prompt stays
        runner.generate(prompt, GenerationConfig(echo=False, max_new_tokens=max_new_tokens, temperature=0.0))
    reader.join()  # the pipe's last writer closed with the restored fds
    os.close(read_fd)
    out = printed.decode("utf-8", errors="replace")
    body, _, stats = out.rpartition(STATS_MARKER)
    text = cut_at_stop(body, stop_strings)
    streamed.finish(text)
    return text, json.loads(stats.splitlines()[0]) if stats else {}


class _Streamer:
    """Forwards decoded text as it arrives, holding back what could still be a stop string or the stats."""

    def __init__(self, on_text: Callable[[str], None] | None, holdback: int, stop_strings: list[str]):
        self.on_text, self.holdback, self.stop_strings = on_text, holdback, stop_strings
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending, self.sent, self.stopped = "", 0, False

    def feed(self, chunk: bytes) -> None:
        if not self.on_text or self.stopped:
            return
        self.pending += self.decoder.decode(chunk)
        if any(s in self.pending for s in self.stop_strings if s):
            self.stopped = True
            return
        ready = self.pending[: max(len(self.pending) - self.holdback, 0)]
        if ready:
            self.on_text(ready)
            self.sent += len(ready)
            self.pending = self.pending[len(ready):]

    def finish(self, text: str) -> None:
        if self.on_text and len(text) > self.sent:
            self.on_text(text[self.sent:])
