"""Throughput benchmark: tokens/s, ms/step and peak memory of PTB-shaped language-model steps."""

from rnnbench.bench.throughput import (
    MODES,
    SHAPES,
    BenchCase,
    PTBStepModel,
    handwritten_case,
    measure,
    run_case,
    run_suite,
)

__all__ = [
    "MODES",
    "SHAPES",
    "BenchCase",
    "PTBStepModel",
    "handwritten_case",
    "measure",
    "run_case",
    "run_suite",
]
