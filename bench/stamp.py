"""Run a command and print each line of its output with the time it arrived.

``python bench/stamp.py [--tty] CMD ARGS...`` prefixes every line of the command's stdout
and stderr with the seconds since start and the stream it came on, then exits with the
command's code. A line is printed when its newline arrives, and a partial line after a short
quiet spell, so the timestamps show whether output streams (many distinct times) or lands at
once. ``--tty`` gives the command a terminal for stderr, as a person's shell would, so
``ponder ask`` shows its live view; that view redraws itself many times a second, so its
screens are shown without escape codes, at most one a second. Used by
``bench/newcomer.sh``; plain standard library, so it runs in a fresh venv.
"""

from __future__ import annotations

import os
import pty
import re
import selectors
import subprocess
import sys
import time

# A partial line (a token stream without newlines) is shown once the stream has been quiet
# this long, so streaming output is visible even when the model writes no newline for a while.
QUIET_SECONDS = 0.5
# The live view's screens are shown at most this often (it redraws 8 times a second).
SCREEN_SECONDS = 1.0
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
# The live view's own lines: the spinner (a Braille character) or the italic tail of the
# text being written. Progress lines are neither, and are always shown.
ITALIC = re.compile(rb"\x1b\[(?:[0-9;]*;)?3(?:;[0-9;]*)?m")
SPINNER = re.compile("[\u2800-\u28ff]")


def main(argv: list[str]) -> int:
    tty = argv[:1] == ["--tty"]
    argv = argv[1:] if tty else argv
    if not argv:
        print("usage: stamp.py [--tty] COMMAND [ARGS...]", file=sys.stderr)
        return 2
    start = time.monotonic()
    if tty:
        leader, follower = pty.openpty()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=follower)
        os.close(follower)
        err_fd = leader
    else:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        err_fd = proc.stderr.fileno()
    assert proc.stdout is not None
    names = {proc.stdout.fileno(): "out", err_fd: "err"}
    shown = {"status": -SCREEN_SECONDS, "tail": -SCREEN_SECONDS}  # live lines last shown
    last = {"status": b"", "tail": b""}
    pending = {fd: b"" for fd in names}
    selector = selectors.DefaultSelector()
    for fd in names:
        selector.register(fd, selectors.EVENT_READ)

    def emit(fd: int, text: bytes) -> None:
        if tty and fd == err_fd:
            # What a terminal shows: the last thing drawn over the line (a terminal ends
            # lines with \r\n, so the trailing \r is not a redraw).
            raw = text.rstrip(b"\r").split(b"\r")[-1]
            text = ANSI.sub(b"", raw).rstrip()
            if not text.strip():
                return
            kind = (
                "status"
                if SPINNER.search(text.decode("utf-8", "replace"))
                else "tail"
                if ITALIC.search(raw)
                else None
            )
            if kind is not None:
                now = time.monotonic()
                if now - shown[kind] < SCREEN_SECONDS or text == last[kind]:
                    return  # a redraw too soon, or of the same text: not worth a line
                shown[kind], last[kind] = now, text
        if tty:  # with a terminal, click colours stdout too
            text = ANSI.sub(b"", text)
        line = text.decode("utf-8", "replace").rstrip("\r\n")
        print(f"[{time.monotonic() - start:7.2f}s] {names[fd]}| {line}", flush=True)

    while selector.get_map():
        events = selector.select(timeout=QUIET_SECONDS)
        if not events:  # quiet: show what a partial line holds so far
            for fd, buffered in pending.items():
                if buffered:
                    emit(fd, buffered + " …".encode())
                    pending[fd] = b""
            continue
        for key, _ in events:
            fd = key.fd
            assert isinstance(fd, int)
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # a terminal whose command has exited (EIO)
                chunk = b""
            if not chunk:
                selector.unregister(fd)
                if pending[fd]:
                    emit(fd, pending[fd])
                    pending[fd] = b""
                continue
            data = pending[fd] + chunk
            *lines, pending[fd] = data.split(b"\n")
            for line in lines:
                emit(fd, line)
    code = proc.wait()
    print(f"[{time.monotonic() - start:7.2f}s] exit {code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
