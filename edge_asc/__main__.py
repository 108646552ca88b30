"""``python -m edge_asc`` runs the command line."""

from edge_asc.cli import main

main()
