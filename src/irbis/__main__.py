"""``python -m irbis`` runs the command line."""

from irbis.cli import main

main()
