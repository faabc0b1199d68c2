"""Contrib cells, registered through the package's own ``rnnbench.cells`` entry points."""
