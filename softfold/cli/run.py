"""`softfold run`: chat with a bundle through the engine a phone uses."""
import argparse
import sys
from pathlib import Path

from softfold.cli.flags import add_max_new_tokens
from softfold.engines.chat import check_text, stream_to_stdout
from softfold.errors import UserError


def add_to(sub) -> None:
    p = sub.add_parser("run", help="chat with a bundle through the phone's engine (TextLLMRunner for .pte, "
                                   "onnxruntime-genai for .onnx)",
                       description="One greedy reply, streamed, with the bundle's chat template applied; timings on "
                                   "stderr. The checksums are verified first; a bundle that failed its gate runs with "
                                   "a warning (docs/runtimes.md).")
    p.add_argument("bundle")
    p.add_argument("prompt", help="the user message; - reads it from standard input (`softfold run B - < message.txt`)")
    add_max_new_tokens(p, 256)
    p.add_argument("--no-verify", action="store_true", help="skip the checksum check before loading (said on stderr)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    # the engines load the runtimes: when the command runs, not for --help
    from softfold.api import Bundle

    bundle = Bundle(Path(args.bundle))
    prompt = read_message(args.prompt)
    check_text(prompt)
    if args.no_verify:
        bundle.check_files()
        print(f"note: {bundle.path}'s checksums were not verified (--no-verify)", file=sys.stderr)
        bundle.warn_if_gate_failed()
    else:
        bundle.opened("re-export it, or pass --no-verify to chat anyway")
    reply = bundle.generate(prompt, args.max_new_tokens, on_token=stream_to_stdout, check=False)
    print(f"\n[{reply.prompt_tokens} prompt tokens, {reply.new_tokens} new; first token {reply.time_to_first_token_ms} ms;"
          f" decode {reply.decode_tokens_per_s:.1f} tok/s]", file=sys.stderr)
    return 0


def read_message(prompt: str) -> str:
    """The message: the argument itself, or standard input's text for "-"; a one-line UserError when that is empty
    or not UTF-8."""
    if prompt != "-":
        return prompt
    try:
        text = sys.stdin.buffer.read().decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise UserError(f"the message on standard input is not UTF-8 text ({e.reason} at byte {e.start}): send it as "
                        "UTF-8") from None
    if not text:
        raise UserError("`softfold run BUNDLE -` read an empty message from standard input: pipe the message in "
                        "(softfold run BUNDLE - < message.txt), or pass it as an argument")
    return text
