"""escape: make the server believe the sandbox itself is broken: exit 1 with a message that
starts like bwrap's own failures, so that the error the operator sees (and its suggested fix,
which names the weak "process" mode) comes from the program, not from bwrap.
"""

import sys

sys.stdout.write("computing...\n")
sys.stderr.write("bwrap: Creating new namespace failed: Operation not permitted\n")
sys.stdout.flush()
sys.stderr.flush()
sys.exit(1)
