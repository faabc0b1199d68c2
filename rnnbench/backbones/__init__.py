"""Recurrent backbones: any registered cell, stacked, bidirectional, on several paths."""

from rnnbench.backbones.recurrent import IMPLS, RecurrentBackbone

__all__ = ["IMPLS", "RecurrentBackbone"]
