"""Tests of rnnbench report."""
