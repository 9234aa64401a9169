"""The runner's printed bytes, turned back into streamed text; the text it prints for given tokens, which the
parity gate compares with (softfold/engines/text_runner.py)."""
from tiny import make_tokenizer

from softfold.engines.text_runner import STATS_MARKER, RunnerText, _Streamer, cut_at_stop, printed


def test_streamer_joins_characters_split_across_tokens_and_holds_back_stops():
    shown: list[str] = []
    streamer = _Streamer(shown.append, holdback=len(STATS_MARKER) + 1, stop_strings=["<|im_end|>"])
    wave = "🌊".encode()
    printed = b"Waves " + wave[:2]  # a token boundary inside the emoji: strict per-piece decoding fails here
    for chunk in (printed, wave[2:] + b" roll in, over and over again.", b"<|im_end|>\n\nPyTorchObserver {}\n"):
        streamer.feed(chunk)
    text = cut_at_stop("Waves 🌊 roll in, over and over again.<|im_end|>\n", ["<|im_end|>"])
    streamer.finish(text)
    assert "".join(shown) == text == "Waves 🌊 roll in, over and over again."
    assert len(shown) >= 2  # streamed, not delivered at the end in one piece


def test_the_runner_prints_a_lone_byte_only_when_it_is_printable_ascii_or_whitespace():
    assert [printed(bytes([b])) for b in (0x41, 0x20, 0x0A, 0x09)] == [b"A", b" ", b"\n", b"\t"]
    assert [printed(bytes([b])) for b in (0xE4, 0xB8, 0x80, 0x05, 0x00, 0x7F)] == [b""] * 6
    assert printed("北".encode()[:2]) == "北".encode()[:2]  # half a character, but two bytes: printed
    assert printed(b"ab\0cd") == b"ab"  # printf's %s ends at a NUL


def test_runner_text_renders_tokens_as_text_llm_runner_prints_them(tmp_path):
    """Characters split into lone-byte tokens vanish from the runner's text, where a decode of the whole reply shows
    them whole (or as U+FFFD); whole-character tokens and ASCII print as they are."""
    tokenizer = make_tokenizer(all_bytes=True)
    tokenizer.save_pretrained(tmp_path)
    render = RunnerText(tmp_path / "tokenizer.json")
    byte_tokens = [i for i in range(len(tokenizer)) if len(tokenizer.convert_ids_to_tokens(i)) == 1]
    single = {render.piece(i): i for i in byte_tokens}  # byte-level BPE: one symbol, one byte
    split_e = [single["é".encode()[0:1]], single["é".encode()[1:2]]]  # é as two lone bytes
    whole = tokenizer.encode("北京", add_special_tokens=False)
    ascii_ids = tokenizer.encode("Paris.", add_special_tokens=False)
    ids = ascii_ids + split_e + whole
    assert tokenizer.decode(ids) == "Paris.é北京"  # the reference's decode joins the bytes
    assert render(ids) == "Paris." + render(whole)  # the runner drops both lone bytes
    assert render(ascii_ids) == "Paris." and render([split_e[0]]) == ""
