"""``python -m alphaforge ...``: the same command line as the ``alphaforge`` script."""

from alphaforge.cli import main

main()
