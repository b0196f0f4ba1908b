"""write: the trace database through sqlite3 (its C library opens files, not Python), and a
new database file in a host directory through ATTACH.
"""

import os
import sqlite3

SECRET_FILE = "__SECRET_FILE__"
CANARY_DIR = "__CANARY_DIR__"
wins = []
try:
    db = sqlite3.connect(SECRET_FILE)
    db.execute("CREATE TABLE IF NOT EXISTS pwned (x TEXT)")
    db.execute("INSERT INTO pwned VALUES ('pwned')")
    db.commit()
    db.close()
    wins.append("inserted into the trace database")
except sqlite3.Error as exc:
    print(f"trace database: {exc}")
try:
    db = sqlite3.connect(":memory:")
    db.execute("ATTACH DATABASE ? AS evil", (os.path.join(CANARY_DIR, "attached.db"),))
    db.execute("CREATE TABLE evil.t (x)")
    db.commit()
    db.close()
    wins.append("created a database in the host directory")
except sqlite3.Error as exc:
    print(f"ATTACH: {exc}")
try:
    db = sqlite3.connect(f"file:{SECRET_FILE}?mode=rw", uri=True)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("VACUUM")
    db.close()
    wins.append("switched the trace database to WAL and vacuumed it")
except sqlite3.Error as exc:
    print(f"WAL/VACUUM: {exc}")
if wins:
    print("ESCAPED: " + ", ".join(wins))
