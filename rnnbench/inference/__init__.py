"""Using a trained model: load a run or checkpoint, evaluate it, sample from it, export it."""

from rnnbench.inference.evaluate import SPLITS, EvalResult, evaluate
from rnnbench.inference.export import (
    FORMATS,
    ExportMismatchError,
    ExportResult,
    StepModel,
    export_model,
)
from rnnbench.inference.generate import (
    detokenize,
    lm_vocab,
    midi_available,
    sample_piano_roll,
    sample_text,
    save_midi,
    save_piano_roll_png,
    score_text,
    tokenize,
)
from rnnbench.inference.loading import InferenceError, LoadedModel, load_model, resolve_checkpoint

__all__ = [
    "FORMATS", "SPLITS", "EvalResult", "ExportMismatchError", "ExportResult", "InferenceError",
    "LoadedModel", "StepModel", "detokenize", "evaluate", "export_model", "lm_vocab",
    "load_model", "midi_available", "resolve_checkpoint", "sample_piano_roll", "sample_text",
    "save_midi", "save_piano_roll_png", "score_text", "tokenize",
]
