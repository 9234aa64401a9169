"""The exit-code contract: what the machine stopped becomes an EnvironmentFailure (exit 3) naming the fix; anything
else stays the OSError it is."""
import errno

from softfold.errors import EnvironmentFailure, ExitCode, environment_failure


def test_the_exit_codes_are_the_contracts():
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3]
    assert (ExitCode.GATE_FAILED, ExitCode.BAD_INPUT, ExitCode.ENVIRONMENT) == (1, 2, 3)


def test_a_full_disk_or_a_forbidden_path_is_the_environment():
    full = environment_failure(OSError(errno.ENOSPC, "No space left on device", "/out"))
    assert isinstance(full, EnvironmentFailure) and "(/out): free disk space" in str(full)
    read_only = environment_failure(OSError(errno.EROFS, "Read-only file system", "/mnt/ro"))
    assert "choose a writable --out" in str(read_only)
    assert environment_failure(OSError(errno.ENOENT, "No such file")) is None  # not the machine's doing
