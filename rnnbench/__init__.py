"""rnnbench: fair, reproducible comparisons of recurrent networks."""

__version__ = "0.1.0"
