"""``python -m mxshift`` runs the command line."""

from mxshift.cli import main

main()
