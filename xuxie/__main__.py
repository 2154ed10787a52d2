"""``python -m xuxie`` runs the command line."""

from .cli import main

main()
