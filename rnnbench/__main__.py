"""``python -m rnnbench`` runs the ``rnnbench`` command."""

from rnnbench.cli import main

raise SystemExit(main())
