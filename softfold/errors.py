"""The exit-code contract of every softfold command, and the two exceptions the CLI turns into codes."""
import errno
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    GATE_FAILED = 1  # a parity gate failed; its report was written
    BAD_INPUT = 2  # a mistake in the user's input, named in one line with the fix, before any heavy work
    ENVIRONMENT = 3  # the machine stopped the work: disk full, read-only, no permission, interrupted


class UserError(Exception):
    """A mistake in the user's input. The CLI prints it as one line and exits with BAD_INPUT."""


class EnvironmentFailure(Exception):
    """The machine, not the input, stopped the work. The CLI prints it as one line and exits with ENVIRONMENT."""


ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def environment_failure(error: OSError) -> EnvironmentFailure | None:
    """The OSError as an EnvironmentFailure when the machine caused it (full, read-only, forbidden), else None."""
    if error.errno not in ENVIRONMENT_ERRNOS:
        return None
    where = f" ({error.filename})" if error.filename else ""
    fix = {errno.ENOSPC: "free disk space", errno.EDQUOT: "free disk quota"}.get(
        error.errno, "choose a writable --out or fix its permissions")
    return EnvironmentFailure(f"{error.strerror or error}{where}: {fix}, then run the command again")
