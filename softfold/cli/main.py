"""The `softfold` command: one module per subcommand, each parsing its flags and calling one library function.

Each command module has `add_to(subparsers)` and `handle(args) -> exit code`. They import the library's heavy
modules inside `handle`: torch must not load before `main` has set OMP_NUM_THREADS, and executorch, onnxruntime
and transformers load only for the commands that use them. Nothing below the CLI imports inside functions.
"""
import argparse
import logging
import os
import sys
import traceback
import warnings

from softfold.cli import bench, calibrate_prefix, demo, distill, evaluate, export, parity, run, sensitivity, verify
from softfold.cli.flags import Parser
from softfold.errors import EnvironmentFailure, ExitCode, UserError, environment_failure

COMMANDS = (export, calibrate_prefix, verify, run, distill, evaluate, parity, sensitivity, bench, demo)
TORCH_ONLY_COMMANDS = {"distill", "eval", "sensitivity", "calibrate-prefix"}  # no phone runtime: let torch use every core
EXAMPLES = """examples:
  softfold demo
  softfold export --soft-prompt my_prompt/ --out artifacts/smollm2/executorch-fp32
  softfold export --model ./Llama-3.2-1B-Instruct --soft-prompt my_prompt/ --out out/llama-fp32 --force
  softfold export --soft-prompt my_prompt/ --recipe 8da4w --embedding-bits 8 --out artifacts/smollm2/executorch-8da4w
  softfold export --soft-prompt my_prompt/ --target onnx --recipe int4 --out artifacts/smollm2/onnx-int4
  softfold export --soft-prompt my_prompt/ --recipe 8da4w --keep-8bit lm_head --out artifacts/smollm2/executorch-mixed
  softfold export --soft-prompt my_prompt/ --folding virtual-tokens --out artifacts/smollm2/executorch-virtual
  softfold calibrate-prefix --soft-prompt my_prompt/ --recipe 8da4w --embedding-bits 8 --out prefix-8da4w.safetensors
  softfold export --soft-prompt my_prompt/ --recipe 8da4w --embedding-bits 8 --prefix-kv prefix-8da4w.safetensors --out out/8da4w-cal
  softfold distill --method steering --steering-init mean-difference --steps 0 --out steering-baseline/
  softfold export --steering-vector steering-baseline/control_vector.gguf --target onnx --out out/steered-onnx
  softfold run artifacts/smollm2-135m-safety/executorch-fp32 "How do I bake bread?"
  softfold run artifacts/smollm2-135m-safety/executorch-fp32 - < message.txt
  softfold verify artifacts/smollm2-135m-safety/executorch-fp32
  softfold parity out/new-8da4w --against released/8da4w --prompts my_prompts.jsonl --junit parity.xml

exit codes (every command):
  0  done
  1  a parity gate failed (its report was written) / verify found a damaged bundle
  2  bad input: one line names the input and the fix, before any heavy work
  3  the environment stopped the work: disk full, read-only or forbidden path, interrupted
  --debug after any command shows the traceback behind an error
"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="softfold", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                    description="Fold a trained soft prompt (PEFT prompt tuning) into phone-ready model bundles, "
                                "and gate them on parity with the PyTorch reference.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_to(sub)
    for command in sub.choices.values():
        command.add_argument("--debug", action="store_true", help="show the traceback behind an error")
    return parser


def main(argv: list[str] | None = None) -> int:
    command = (argv if argv is not None else sys.argv[1:])[:1]
    if not set(command) & TORCH_ONLY_COMMANDS:
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch loads: libgomp oversubscription slows decode
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a flag mistake already reported
        return e.code
    args.command_line = "softfold " + " ".join(sys.argv[1:] if argv is None else argv)
    return run_command(args.func, args)


def quiet_libraries() -> None:
    """Keep the terminal for softfold's own output: the ML stack warns a lot about its own internals."""
    if os.environ.get("SOFTFOLD_VERBOSE"):
        return
    import torch  # noqa: F401  torch sets its loggers' levels when imported: import it first, so ours stick

    warnings.simplefilter("ignore")
    for name in ("torch", "torchao", "executorch", "onnxscript", "onnxruntime", "transformers", "peft", "root"):
        logging.getLogger(None if name == "root" else name).setLevel(logging.ERROR)


def run_command(handler, args: argparse.Namespace) -> int:
    """A command's handler under the exit-code contract: user mistakes and environment failures as one line."""
    quiet_libraries()
    try:
        return handler(args)
    except UserError as e:
        return _fail(args, f"softfold: error: {e}", ExitCode.BAD_INPUT)
    except EnvironmentFailure as e:
        return _fail(args, f"softfold: environment: {e}", ExitCode.ENVIRONMENT)
    except KeyboardInterrupt:
        return _fail(args, "softfold: interrupted; nothing partial was left at --out", ExitCode.ENVIRONMENT)
    except OSError as e:
        if (failure := environment_failure(e)) is None:
            raise
        return _fail(args, f"softfold: environment: {failure}", ExitCode.ENVIRONMENT)


def _fail(args: argparse.Namespace, message: str, code: ExitCode) -> int:
    if args.debug:
        traceback.print_exc()
    print(message, file=sys.stderr)
    return code
