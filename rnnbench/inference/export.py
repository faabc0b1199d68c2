"""A trained model as a standalone file (ONNX or ``torch.export``), checked against the module.

What is exported is :class:`StepModel`: ``(inputs, *state) -> (outputs, *next_state)`` over
one fixed shape (batch ``B``, ``T`` steps), so a caller can run a stream window by window
(``T = 1``: a step function for sampling) by feeding each call's state to the next. The file
is written to a temporary name, run on fresh inputs (a zero and a random state) and compared
with the module; only when every output is within ``atol`` does it take its name.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnbench.inference.loading import InferenceError, LoadedModel

FORMATS = ("onnx", "torch-export")
SUFFIX = {"onnx": ".onnx", "torch-export": ".pt2"}
ATOL = 1e-5


class ExportMismatchError(RuntimeError):
    """The exported file's outputs differ from the module's by more than the tolerance."""


class StepModel(nn.Module):
    """A trained module as ``(inputs, *state) -> (outputs, *next_state)`` (eval mode).

    Args:
        module: An :class:`~rnnbench.module.RNNModule`.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.model = module

    def forward(self, inputs: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # inputs (B, T) token ids or (B, T, I) features; each state (L * D, B, H)
        out, new_state = self.model(inputs, tuple(state))  # out: the task's outputs
        return (out, *new_state)


def state_names(module: nn.Module) -> list[str]:
    """Names of the state tensors: ``h`` (and ``c`` for an LSTM-like cell with two)."""
    n = int(module.backbone.cell_cls.state_size)
    return ["h", "c"][:n] if n <= 2 else [f"state_{i}" for i in range(n)]


def example_inputs(module: nn.Module, batch_size: int, steps: int, *, seed: int = 0,
                   zero_state: bool = False) -> tuple[torch.Tensor, ...]:
    """Random inputs of the task's kind and a state, as :class:`StepModel` takes them.

    Token tasks get ids in range, music 0/1 frames, the others normal features.

    Returns:
        ``(inputs, *state)``: inputs ``(B, T)`` or ``(B, T, I)``; each state ``(L * D, B, H)``.
    """
    gen = torch.Generator().manual_seed(seed)
    task, bb = module.task, module.backbone
    vocab = getattr(task, "vocab_size", None) or getattr(task, "num_symbols", None)
    if vocab is not None and task.name in ("lm", "copy"):
        inputs = torch.randint(0, int(vocab), (batch_size, steps), generator=gen)  # (B, T)
    elif task.name == "music":
        inputs = (torch.rand(batch_size, steps, task.input_size, generator=gen) < 0.1).float()
    else:
        inputs = torch.randn(batch_size, steps, task.input_size, generator=gen)  # (B, T, I)
    shape = (bb.num_layers * bb.num_directions, batch_size, bb.hidden_size)
    state = [torch.zeros(shape) if zero_state else 0.5 * torch.randn(shape, generator=gen)
             for _ in state_names(module)]  # each (L * D, B, H)
    return (inputs, *state)


@dataclass
class ExportResult:
    """An exported file and how closely it reproduced the module.

    Attributes:
        path: The file written.
        format: ``onnx`` or ``torch-export``.
        input_names: ``inputs`` then the state names.
        output_names: ``outputs`` then ``next_`` + each state name.
        input_shapes: Shapes of the fixed inputs, in order.
        max_abs_diff: Largest difference to the module over every output and check.
        atol: The tolerance it was held to.
    """

    path: Path
    format: str
    input_names: list[str]
    output_names: list[str]
    input_shapes: list[tuple[int, ...]]
    max_abs_diff: float
    atol: float = ATOL


def _check(run: Callable[..., Sequence[Any]], model: StepModel, module: nn.Module,
           batch_size: int, steps: int, atol: float) -> float:
    """Largest |exported - module| over a zero-state and a random-state input."""
    worst = 0.0
    for seed, zero in ((1, True), (2, False)):
        args = example_inputs(module, batch_size, steps, seed=seed, zero_state=zero)
        with torch.no_grad():
            want = model(*args)
        got = run(*args)
        if len(got) != len(want):
            raise ExportMismatchError(f"the exported model returns {len(got)} tensors, the "
                                      f"module {len(want)}")
        for w, g in zip(want, got):
            g = torch.as_tensor(g)
            if tuple(g.shape) != tuple(w.shape):
                raise ExportMismatchError(f"exported output shape {tuple(g.shape)} differs "
                                          f"from the module's {tuple(w.shape)}")
            worst = max(worst, float((g.to(w.dtype) - w).abs().max()))
    if not worst <= atol:
        raise ExportMismatchError(
            f"the exported model's outputs differ from the module's by up to {worst:.3g} "
            f"(tolerance {atol:g}); the file was not kept"
        )
    return worst


def _torch_export(model: StepModel, args: tuple, tmp: Path) -> Callable[..., Sequence[Any]]:
    ep = torch.export.export(model, args)
    torch.export.save(ep, tmp)
    loaded = torch.export.load(tmp).module()  # what a user of the file gets

    def run(*inputs):
        with torch.no_grad():
            return loaded(*inputs)

    return run


def _onnx_missing() -> str | None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime", "onnxscript")
               if importlib.util.find_spec(m) is None]
    return ", ".join(missing) or None


def _onnx_export(model: StepModel, args: tuple, tmp: Path, names: tuple[list[str], list[str]]
                 ) -> Callable[..., Sequence[Any]]:
    import onnxruntime as ort

    inputs, outputs = names
    # The exporter narrates every pass on stdout and warns about absent torchvision ops.
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            program = torch.onnx.export(model, args, dynamo=True, input_names=inputs,
                                        output_names=outputs, verbose=False)
            program.save(str(tmp))
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(tmp), options, providers=["CPUExecutionProvider"])

    def run(*args_):
        return [torch.from_numpy(a) for a in
                session.run(None, {n: a.numpy() for n, a in zip(inputs, args_)})]

    return run


def default_export_path(loaded: LoadedModel, fmt: str) -> Path:
    """``RUN/export/model.onnx`` (or ``.pt2``); next to a bare checkpoint, its name."""
    if loaded.run_dir is not None:
        return loaded.run_dir / "export" / f"model{SUFFIX[fmt]}"
    return loaded.checkpoint.with_suffix(SUFFIX[fmt])


def export_model(
    loaded: LoadedModel,
    fmt: str,
    out: str | Path | None = None,
    *,
    batch_size: int = 1,
    steps: int | None = None,
    atol: float = ATOL,
) -> ExportResult:
    """Exports the model over fixed ``(batch_size, steps)`` inputs and checks the file.

    Args:
        loaded: From :func:`~rnnbench.inference.load_model`.
        fmt: ``"onnx"`` (needs the ``onnx`` extra: onnx, onnxruntime, onnxscript) or
            ``"torch-export"`` (a ``torch.export`` program, ``torch.export.load`` reads it).
        out: File to write (default :func:`default_export_path`).
        batch_size: Rows of the fixed input.
        steps: Time steps of the fixed input; default 1 for next-step tasks (a step
            function), required for tasks that read whole sequences.
        atol: Largest absolute difference to the module that passes.

    Raises:
        InferenceError: Unknown format, bad sizes, ONNX packages missing.
        ExportMismatchError: The file does not reproduce the module (nothing is kept).
    """
    if fmt not in FORMATS:
        raise InferenceError(f"--format must be onnx or torch-export, got {fmt!r}")
    module = loaded.module.cpu().eval()
    if steps is None:
        if not module.task.causal:
            raise InferenceError(
                f"task {loaded.task_name} reads whole sequences: give --steps, the length of "
                "the sequences the exported model will take"
            )
        steps = 1
    if int(batch_size) <= 0 or int(steps) <= 0:
        raise InferenceError(f"--batch-size and --steps must be positive, got {batch_size} "
                             f"and {steps}")
    if fmt == "onnx" and _onnx_missing():
        raise InferenceError(
            f"--format onnx needs {_onnx_missing()}: pip install 'rnnbench[onnx]'"
        )
    path = Path(out) if out is not None else default_export_path(loaded, fmt)
    inputs = ["inputs", *state_names(module)]
    outputs = ["outputs", *(f"next_{n}" for n in state_names(module))]
    model = StepModel(module).eval()
    args = example_inputs(module, batch_size, steps, seed=0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InferenceError(f"cannot write to {path.parent} ({err.strerror}); pick another "
                             "--out") from None
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        if fmt == "onnx":
            run = _onnx_export(model, args, tmp, (inputs, outputs))
        else:
            run = _torch_export(model, args, tmp)
        worst = _check(run, model, module, batch_size, steps, atol)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(path, fmt, inputs, outputs, [tuple(a.shape) for a in args], worst, atol)
