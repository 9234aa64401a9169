"""The runner's printed bytes, turned back into streamed text (softfold/text_runner.py)."""
from softfold.text_runner import STATS_MARKER, _Streamer, cut_at_stop


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
