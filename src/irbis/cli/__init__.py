"""The ``irbis`` command line."""

from irbis.cli.app import app, main

__all__ = ["app", "main"]
