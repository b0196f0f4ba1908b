"""write: files into a host directory with every high-level writer Python has.

open() in w/x/a/r+ modes, pathlib, shutil.copyfile, tempfile, codecs; then checks the result.
"""

import codecs
import os
import pathlib
import shutil
import tempfile

CANARY_DIR = "__CANARY_DIR__"
note = os.path.join(CANARY_DIR, "note.txt")
wins = []


def attempt(label, action):
    try:
        action()
    except Exception as exc:
        print(f"{label}: {type(exc).__name__}: {exc}")
    else:
        wins.append(label)


def open_w():
    with open(os.path.join(CANARY_DIR, "open-w.txt"), "w") as f:
        f.write("pwned")


def open_x():
    with open(os.path.join(CANARY_DIR, "open-x.txt"), "x") as f:
        f.write("pwned")


def open_a():
    with open(note, "a") as f:
        f.write("pwned")


def open_rplus():
    with open(note, "r+b") as f:
        f.write(b"PWNED")


def copy_in():
    with open("payload.txt", "w") as f:
        f.write("pwned")
    shutil.copyfile("payload.txt", os.path.join(CANARY_DIR, "copied.txt"))


def temp_in():
    with tempfile.NamedTemporaryFile(dir=CANARY_DIR, delete=False) as f:
        f.write(b"pwned")


def codecs_in():
    with codecs.open(os.path.join(CANARY_DIR, "codecs.txt"), "w", "utf-8") as f:
        f.write("pwned")


attempt("open(w)", open_w)
attempt("open(x)", open_x)
attempt("open(a) on an existing file", open_a)
attempt("open(r+b) on an existing file", open_rplus)
attempt("pathlib.write_text", lambda: pathlib.Path(CANARY_DIR, "pathlib.txt").write_text("pwned"))
attempt("shutil.copyfile", copy_in)
attempt("tempfile.NamedTemporaryFile", temp_in)
attempt("codecs.open", codecs_in)
if wins:
    print("ESCAPED: wrote into the host directory with " + ", ".join(wins))
