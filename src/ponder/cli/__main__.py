"""``python -m ponder.cli``: the same as the ``ponder`` command."""

from ponder.cli.app import main

main()
