"""The native side of the process: where C++ libraries print (ExecuTorch's runner and kernels write to fds 1 and 2
directly), and the C heap's free memory handed back."""
import contextlib
import ctypes
import gc
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def native_output(stdout_fd: int) -> Iterator[None]:
    """Point fd 1 (what C++ prints) at `stdout_fd` and fd 2 at /dev/null; sys.stdout stays the terminal."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    terminal = os.fdopen(os.dup(saved[0]), "w")
    os.dup2(stdout_fd, 1)
    os.dup2(devnull, 2)
    os.close(stdout_fd)
    try:
        with contextlib.redirect_stdout(terminal):
            yield
    finally:
        ctypes.CDLL(None).fflush(None)  # C stdio buffers go where they were written, not to the restored fds
        terminal.close()
        for fd, target in zip(saved, (1, 2)):
            os.dup2(fd, target)
            os.close(fd)
        os.close(devnull)


def muted() -> contextlib.AbstractContextManager:
    """Discard what C++ code prints meanwhile (ExecuTorch kernel logs, cpuinfo probes)."""
    return native_output(os.open(os.devnull, os.O_WRONLY))


def release_memory() -> None:
    """Collect Python's unreachable cycles (a model's modules hold some) and hand the C heap's free pages back to the
    OS (glibc's malloc_trim): without it, gigabytes of freed tensors stay in the process's resident memory, where
    a later step's peak stacks on them. Elsewhere than glibc, only the collection."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
