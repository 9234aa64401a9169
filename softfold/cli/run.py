"""`softfold run`: chat with a bundle through the engine a phone uses."""
import argparse
import sys
from pathlib import Path

from softfold.cli.common import positive_int


def add_to(sub) -> None:
    p = sub.add_parser("run", help="chat with a bundle through the phone's engine (TextLLMRunner for .pte, "
                                   "onnxruntime-genai for .onnx)",
                       description="One greedy reply, streamed, with the bundle's chat template applied; timings on "
                                   "stderr. The checksums are verified first, and a bundle that failed its parity "
                                   "gate is run with a warning.")
    p.add_argument("bundle")
    p.add_argument("prompt", help="the user message; the bundle's chat template is applied")
    p.add_argument("--max-new-tokens", type=positive_int, default=256)
    p.add_argument("--no-verify", action="store_true", help="skip the checksum check before loading (said on stderr)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from softfold.api import Bundle
    from softfold.chat import check_text, stream_to_stdout

    bundle = Bundle(Path(args.bundle))
    check_text(args.prompt)
    if args.no_verify:
        print(f"note: {bundle.path}'s checksums were not verified (--no-verify)", file=sys.stderr)
    else:
        bundle.check_intact("re-export it, or pass --no-verify to chat anyway")
    if not bundle.manifest.parity.passed:
        print(f"WARNING: {bundle.path} FAILED its parity gate at export ({bundle.path}/parity.md): its replies may "
              "not match the soft prompt's behavior", file=sys.stderr)
    reply = bundle.generate(args.prompt, args.max_new_tokens, on_token=stream_to_stdout, check=False)
    print(f"\n[{reply.prompt_tokens} prompt tokens, {reply.new_tokens} new; first token {reply.time_to_first_token_ms} ms;"
          f" decode {reply.decode_tokens_per_s:.1f} tok/s]", file=sys.stderr)
    return 0
