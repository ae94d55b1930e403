"""Serve the reference with one campaign mutant applied, in memory (no file is changed):
``python tests/mutation/serve.py MUTANT_ID [replay-reference options...]``, e.g. as a
``--target-cmd`` to show that a new case kills a survivor without a whole campaign run."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

if __name__ == "__main__":  # run as a script: make ``mutation`` and ``reference`` importable
    sys.path[:1] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).parents[2])]

from mutation import catalog as cat

ROOT = Path(__file__).resolve().parents[2]


class MutatedModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports one module from the given source instead of its file."""

    def __init__(self, name: str, path: Path, source: str) -> None:
        self.name, self.path, self.source = name, path, source

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != self.name:
            return None
        spec = importlib.util.spec_from_loader(fullname, self, origin=str(self.path))
        if spec is not None and self.path.name == "__init__.py":
            spec.submodule_search_locations = [str(self.path.parent)]
        return spec

    def exec_module(self, module: ModuleType) -> None:
        module.__file__ = str(self.path)
        exec(compile(self.source, str(self.path), "exec"), module.__dict__)


def install(mutant_id: str) -> None:
    """Make the next import of the mutant's module run its mutated source."""
    mutant = cat.find(ROOT, mutant_id)
    name = mutant.module.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    source = cat.mutated_source(ROOT, mutant)
    sys.meta_path.insert(0, MutatedModule(name, ROOT / mutant.module, source))


if __name__ == "__main__":
    mutant_id, *options = sys.argv[1:]
    install(mutant_id)
    from reference.cli import main

    main(options)
