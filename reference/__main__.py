"""``python -m reference``: the same as ``replay-reference``."""

from reference.cli import main

main()
