"""Messages between the monitor and its child processes, over the child's stdin/stdout.

One message is the pickle's length and how many buffers follow it, the pickle, then each
buffer (length, bytes). Large arrays travel as those out-of-band buffers (pickle protocol
5), written from their own memory: a window's sample is not copied into a pickle, and the
write waits for the child without holding the interpreter lock.

The children are plain subprocesses (``python -m <module>``) rather than multiprocessing:
they need no main-module guard in whatever program embeds the monitor, and each ends when
its stdin closes (the monitor exited, even by SIGKILL).
"""

from __future__ import annotations

import fcntl
import io
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

_LENGTH = struct.Struct("<Q")
_HEADER = struct.Struct("<QI")
# A pipe holds 64 KB by default: a poll batch or a window of a MB or two then crosses in
# dozens of writes and reads, and the reader needs the interpreter lock after each one.
# Linux lets a process raise its pipes to /proc/sys/fs/pipe-max-size (1 MB by default).
PIPE_BYTES = 1 << 20


def start_child(module: str) -> subprocess.Popen[bytes]:
    """``python -m module`` with pipes for its stdin and stdout (its stderr is ours)."""
    process = subprocess.Popen(
        [sys.executable, "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_child_environment()
    )
    for stream in (process.stdin, process.stdout):
        _enlarge(stream)
    return process


def answers_stream() -> BinaryIO:
    """In a child: the real stdout, for answers; anything a library prints goes to stderr."""
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return answers


def write(stream: IO[bytes], message: Any) -> None:
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    stream.write(_HEADER.pack(len(data), len(buffers)))
    stream.write(data)
    for buffer in buffers:
        raw = buffer.raw()
        stream.write(_LENGTH.pack(raw.nbytes))
        stream.write(raw)
    stream.flush()


def read(stream: IO[bytes]) -> Any:
    """The next message; EOFError when the other end closed the pipe."""
    size, count = _HEADER.unpack(_read_exactly(stream, _HEADER.size))
    data = _read_exactly(stream, size)
    buffers = [_read_exactly(stream, _LENGTH.unpack(_read_exactly(stream, _LENGTH.size))[0]) for _ in range(count)]
    return pickle.loads(data, buffers=buffers)


def _enlarge(stream: IO[bytes] | None) -> None:
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if stream is None or set_size is None:
        return
    try:
        fcntl.fcntl(stream.fileno(), set_size, PIPE_BYTES)
    except OSError:  # a lower pipe-max-size, or the user's pipe quota is spent: the default works too
        pass


def _read_exactly(stream: IO[bytes], size: int) -> bytearray:
    # A bytearray, so that arrays rebuilt on it are writable like the sender's.
    data = bytearray(size)
    # A buffered stream fills it unless the pipe closed. cast: typing's IO has no readinto,
    # but every stream read here is a buffered one (a Popen pipe with the default bufsize,
    # or sys.stdin.buffer).
    if size and cast(io.BufferedIOBase, stream).readinto(data) < size:
        raise EOFError("the other end of the pipe closed")
    return data


def _child_environment() -> dict[str, str]:
    # The child imports this package from wherever this process found it.
    source = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": source if not path else f"{source}{os.pathsep}{path}"}
