"""``python -m mailferry.cli``: the ``mailferry`` command."""

from mailferry.cli import run

run()
