"""The native side of the process: what C++ code prints to fd 1 is muted or piped, sys.stdout stays the terminal."""
import os

from softfold.native_io import muted, native_output, release_memory


def test_muted_swallows_what_native_code_prints(capfd):
    with muted():
        os.write(1, b"from C++\n")
    print("from Python")
    assert capfd.readouterr().out == "from Python\n"


def test_native_output_goes_to_the_given_fd_and_python_still_prints(capfd):
    read_fd, write_fd = os.pipe()
    with native_output(write_fd):
        os.write(1, b"runner piece")
        print("said", flush=True)
    captured = os.read(read_fd, 100)
    os.close(read_fd)
    assert captured == b"runner piece" and capfd.readouterr().out == "said\n"
    release_memory()  # collects and trims; nothing to assert but that it runs anywhere
