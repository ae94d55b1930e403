"""Run the reference server with one mutant applied.

python tests/mutants/serve.py NAME[+NAME...] [replay-reference options...]
python tests/mutants/serve.py --list

Several names joined by ``+`` apply several mutants at once: a server with many failures, as
bench/red_run.py needs.
"""

from __future__ import annotations

import sys

from mutants import MUTANTS

from reference.cli import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["--list"]:
        for known in MUTANTS.values():
            print(f"{known.name}: {known.bug}")
        raise SystemExit(0)
    names, *options = sys.argv[1:]
    for name in names.split("+"):
        MUTANTS[name].apply()
    main(options)
