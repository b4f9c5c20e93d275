"""The ``mailferry`` command (app.py: the click group; one module a command group).

``run`` is the entry point (the console script and ``python -m mailferry.cli``). It imports the
commands with Python's cyclic garbage collector paused and then freezes what the imports made:
those ~65,000 objects live as long as the process, yet every full collection (during the imports,
during the run and at exit) walked them all (benchmarks/README.md, "Many folders").
"""

from __future__ import annotations

import gc


def run() -> None:
    """Run the ``mailferry`` command line."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        from mailferry.cli.app import main  # noqa: PLC0415 - imported with the collector paused
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
    main()
