"""`optimum-cli export softfold`: `softfold export` inside optimum's CLI.

optimum loads every module of the PEP 420 namespace `optimum.commands.register` and registers its
REGISTER_COMMANDS; softfold's wheel installs this file there (pyproject.toml maps the namespace to this
directory). Same flags, errors and exit codes as `softfold export`, with the output directory positional as
in optimum's other exporters: `optimum-cli export softfold --soft-prompt P --recipe 8da4w OUT`.
"""
import os
import sys
import types

from optimum.commands.base import BaseOptimumCLICommand, CommandInfo
from optimum.commands.export.base import ExportCommand

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as `softfold export` sets it, before torch loads

from softfold.cli.export import add_export_arguments, handle  # noqa: E402
from softfold.cli.main import run_command  # noqa: E402
from softfold.errors import ExitCode  # noqa: E402


class SoftfoldExportCommand(BaseOptimumCLICommand):
    COMMAND = CommandInfo(name="softfold", help="Fold a trained soft prompt (PEFT prompt tuning) into an ExecuTorch "
                                                "or ONNX Runtime bundle and gate it on parity (softfold export)")

    @staticmethod
    def parse_args(parser) -> None:
        add_export_arguments(parser, positional_out=True)
        parser.add_argument("--debug", action="store_true", help="show the traceback behind an error")
        parser.error = types.MethodType(_one_line_error, parser)

    def run(self) -> None:
        sys.exit(run_command(handle, self.args))  # optimum ignores run()'s return: exit with the code


def _one_line_error(parser, message: str) -> None:
    """A flag mistake as softfold's own errors read (one line, exit 2), not optimum's usage block."""
    parser.exit(ExitCode.BAD_INPUT, f"softfold: error: {message} (see {parser.prog} --help)\n")


REGISTER_COMMANDS = [(SoftfoldExportCommand, ExportCommand)]
