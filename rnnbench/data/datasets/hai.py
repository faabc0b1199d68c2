"""HAI-style control data: a CSV loader, sliding windows, a simple mixed-signal process.

The HAI-shaped plant with closed-loop control and stealthy attacks is in
:mod:`rnnbench.data.datasets.plant`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from torch import Tensor
from torch.utils.data import Dataset

from rnnbench.data.batch import Batch
from rnnbench.data.datasets.plant import place_attacks

__all__ = [
    "ATTACK_KINDS",
    "HAIWindows",
    "MinMaxNormalizer",
    "load_hai_csv",
    "make_synthetic_process",
    "sensor_columns",
]

ATTACK_KINDS = ("offset", "freeze", "drift", "noise")
_MIN_ATTACK, _MAX_ATTACK, _MIN_GAP = 30, 300, 60


def _lag(target: np.ndarray, tau: float, noise: np.ndarray) -> np.ndarray:
    """First-order lag ``y[t] = y[t-1] + (target[t] - y[t-1]) / tau + noise[t]`` (a plant)."""
    y = np.empty_like(target)
    y[0] = target[0]
    for t in range(1, len(target)):
        y[t] = y[t - 1] + (target[t] - y[t - 1]) / tau + noise[t]
    return y


def _ar1(phi: float, innovations: np.ndarray) -> np.ndarray:
    y = np.empty_like(innovations)
    y[0] = innovations[0]
    for t in range(1, len(innovations)):
        y[t] = phi * y[t - 1] + innovations[t]
    return y


def _place_attacks(rng: np.random.Generator, n_steps: int, n_attacks: int) -> list:
    """One attack of 30-300 steps in each of ``n_attacks`` slots of the second half."""
    return place_attacks(rng, n_steps, n_attacks, _MIN_ATTACK, _MAX_ATTACK, _MIN_GAP)


def make_synthetic_process(
    n_steps: int = 20000, n_sensors: int = 8, n_attacks: int = 6, seed: int = 0
) -> pd.DataFrame:
    """Simulate a small industrial control process with labelled attacks, in HAI's format.

    Five latent signals drive every sensor: a setpoint that steps to a new level every
    10-50 minutes, the process variable following it through a first-order lag (a
    controlled plant), two slow oscillations (periods 5-50 minutes) and a slow AR(1)
    disturbance. Each sensor is a random linear mix of them plus measurement noise,
    then scaled to its own units, so the sensors are coupled the way a plant's are.

    Attacks are injected only into the second half (the first half is attack-free, like
    HAI's training files, so it can serve as the training split), one in each of
    ``n_attacks`` equal slots of it, so its two quarters (validation and test in the
    ``hai_synthetic`` data set) each get about half of them. Each lasts 30-300 steps,
    hits 1-3 random sensors and is one of :data:`ATTACK_KINDS`: ``offset`` (a constant
    bias of 2-4 standard deviations), ``freeze`` (the sensor sticks at its value at the
    attack's start), ``drift`` (a ramp up to 3-5 standard deviations) or ``noise`` (a burst
    of 2-3 standard deviations). All kinds appear once ``n_attacks >= 4``. The attack list
    is in ``frame.attrs["attacks"]`` (dicts with ``start``, ``end`` (exclusive), ``kind``,
    ``sensors``).

    Args:
        n_steps: Number of time steps (one per second).
        n_sensors: Number of sensor columns (1-99).
        n_attacks: Number of attacks; ``n_steps`` must leave room for them in its second
            half: at least 180 steps per attack (each slot holds a 60-step gap and a
            30-step attack); 720 steps per attack lets attacks take their full 30-300.
        seed: Seed of the ``numpy.random.Generator``; equal arguments give equal frames.

    Returns:
        A frame with ``time`` (timestamps 1 s apart), ``P1_S01`` ... ``P1_S{n_sensors}``
        (float64) and ``attack`` (int64, 1 during an attack).
    """
    for name, value, low in (("n_steps", n_steps, 2), ("n_sensors", n_sensors, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if n_sensors > 99:
        raise ValueError(f"n_sensors must be at most 99 (names P1_S01..P1_S99), got {n_sensors}")
    if int(n_attacks) != n_attacks or n_attacks < 0:
        raise ValueError(f"n_attacks must be a non-negative integer, got {n_attacks!r}")
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps, dtype=np.float64)

    setpoint = np.empty(n_steps)
    pos = 0
    while pos < n_steps:
        hold = int(rng.integers(600, 3001))
        setpoint[pos : pos + hold] = rng.uniform(-1.0, 1.0)
        pos += hold
    process = _lag(setpoint, tau=60.0, noise=rng.normal(0.0, 0.002, n_steps))
    periods = rng.uniform(300.0, 3000.0, 2)
    phases = rng.uniform(0.0, 2 * np.pi, 2)
    oscillations = np.sin(2 * np.pi * t[:, None] / periods + phases)  # (n_steps, 2)
    disturbance = _ar1(0.998, rng.normal(0.0, 0.02, n_steps))
    latents = np.column_stack([setpoint, process, oscillations, disturbance])  # (n_steps, 5)

    mixing = rng.normal(0.0, 1.0, (n_sensors, latents.shape[1]))  # (S, 5)
    base = latents @ mixing.T  # (n_steps, S)
    base += rng.normal(0.0, 0.05, base.shape)  # measurement noise
    std = base.std(axis=0) + 1e-9  # (S,)

    attacks = []
    ranges = _place_attacks(rng, n_steps, n_attacks)
    kinds = rng.permutation(np.resize(rng.permutation(len(ATTACK_KINDS)), n_attacks))
    names = [f"P1_S{i + 1:02d}" for i in range(n_sensors)]
    label = np.zeros(n_steps, dtype=np.int64)
    for (start, end), kind_id in zip(ranges, kinds.tolist(), strict=True):
        kind = ATTACK_KINDS[kind_id]
        hit = np.sort(rng.choice(n_sensors, int(rng.integers(1, min(3, n_sensors) + 1)), False))
        sign = rng.choice([-1.0, 1.0], len(hit))  # (k,)
        span = end - start
        if kind == "offset":
            base[start:end, hit] += sign * rng.uniform(2.0, 4.0, len(hit)) * std[hit]
        elif kind == "freeze":
            base[start:end, hit] = base[start, hit]
        elif kind == "drift":
            ramp = np.linspace(0.0, 1.0, span)[:, None]  # (span, 1)
            base[start:end, hit] += ramp * sign * rng.uniform(3.0, 5.0, len(hit)) * std[hit]
        else:  # noise burst
            scale = rng.uniform(2.0, 3.0, len(hit)) * std[hit]
            base[start:end, hit] += rng.normal(0.0, 1.0, (span, len(hit))) * scale
        label[start:end] = 1
        attacks.append(
            {"start": start, "end": end, "kind": kind, "sensors": [names[i] for i in hit]}
        )

    offsets = rng.uniform(0.0, 100.0, n_sensors)  # engineering units: levels, pressures, ...
    scales = rng.uniform(1.0, 20.0, n_sensors)
    values = offsets + scales * base  # (n_steps, S)
    frame = pd.DataFrame(values, columns=names)
    frame.insert(0, "time", pd.date_range("2021-07-11 10:00:00", periods=n_steps, freq="s"))
    frame["attack"] = label
    frame.attrs["attacks"] = attacks
    return frame


def _columns_preview(columns: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(repr(c) for c in columns[:limit])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > limit else "")


def _first_nan(frame: pd.DataFrame) -> tuple[int, str] | None:
    isna = frame.isna().to_numpy()  # (N, C)
    if not isna.any():
        return None
    row, col = np.argwhere(isna)[0]
    return int(row), str(frame.columns[col])


def _read_one(path: Path, time_column: str, label_prefix: str) -> tuple[pd.DataFrame, list[str]]:
    frame = pd.read_csv(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    columns = list(frame.columns)
    if time_column not in columns:
        raise ValueError(
            f"{path}: no time column {time_column!r}; columns found: "
            f"{_columns_preview(columns)}. Pass time_column=... (HAI 22.04 names it "
            "'timestamp')"
        )
    prefix = label_prefix.lower()
    labels = [c for c in columns if c.lower().startswith(prefix)]
    if not labels:
        raise ValueError(
            f"{path}: no label column; columns found: {_columns_preview(columns)}. The label "
            f"columns must be named {label_prefix}* (e.g. {label_prefix!r}, "
            f"'{label_prefix}_P1'); add one, or pass label_prefix=... if yours differ"
        )
    sensors = [c for c in columns if c != time_column and c not in labels]
    if not sensors:
        raise ValueError(f"{path}: no sensor columns besides {time_column!r} and {labels}")
    bad = [
        c for c in sensors + labels if not is_numeric_dtype(frame[c]) or is_bool_dtype(frame[c])
    ]
    if bad:
        col = bad[0]
        coerced = pd.to_numeric(frame[col], errors="coerce")
        rows = np.flatnonzero(coerced.isna().to_numpy() & frame[col].notna().to_numpy())
        where = (
            f"; first offending value {frame[col].iloc[rows[0]]!r} at row {rows[0]} "
            f"(line {rows[0] + 2} of the file)"
            if len(rows)
            else ""
        )
        raise ValueError(
            f"{path}: sensor and label columns must be numeric, but {bad} are not{where}"
        )
    nan = _first_nan(frame[[time_column, *sensors, *labels]])
    if nan is not None:
        row, col = nan
        raise ValueError(
            f"{path}: missing value (NaN) in column {col!r} at row {row} (line {row + 2} of the "
            "file); fill or drop the missing values before loading"
        )
    for col in labels:
        values = frame[col].to_numpy()
        off = np.flatnonzero((values != 0) & (values != 1))
        if len(off):
            raise ValueError(
                f"{path}: label column {col!r} must hold 0/1, found {values[off[0]]!r} at row "
                f"{off[0]} (line {off[0] + 2} of the file)"
            )
    try:
        times = pd.to_datetime(frame[time_column])
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{path}: cannot parse time column {time_column!r} as timestamps ({err})"
        ) from err
    out = pd.DataFrame({"time": times})
    out[sensors] = frame[sensors].astype(np.float64)
    out["attack"] = frame[labels].to_numpy().max(axis=1).astype(np.int64)
    return out, sensors


def load_hai_csv(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    time_column: str = "time",
    label_prefix: str = "attack",
) -> pd.DataFrame:
    """Read HAI-format CSV files (e.g. HAI 21.03's ``train1.csv``, ``test1.csv``).

    A file has a time column, numeric sensor columns and one or more 0/1 label columns
    whose names start with ``label_prefix`` (case-insensitive: HAI 21.03 has ``attack``,
    ``attack_P1``, ``attack_P2``, ``attack_P3``; HAI 22.04 has ``Attack``). Files are
    concatenated in the given order and must share their sensor columns.

    Args:
        paths: One path or several; ``.csv.gz`` and other compressions pandas infers work.
        time_column: Name of the time column (HAI 22.04: ``"timestamp"``).
        label_prefix: Prefix of the label columns.

    Returns:
        A frame with ``time`` (datetime64, renamed from ``time_column``), the sensor
        columns in the first file's order (float64), and one ``attack`` column (int64, the
        maximum over the file's label columns), with a fresh 0..N-1 index.

    Raises:
        ValueError: If a file lacks the time or label columns, has non-numeric sensor
            columns, NaNs, non-0/1 labels or sensors that differ from the first file's;
            the message names the file (and column and row where it applies).
        FileNotFoundError: If a file is missing.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("load_hai_csv needs at least one CSV path")
    frames: list[pd.DataFrame] = []
    reference: list[str] | None = None
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"HAI CSV file {path} does not exist")
        frame, sensors = _read_one(path, time_column, label_prefix)
        if "time" in sensors:
            raise ValueError(f"{path}: a sensor column is named 'time', which is reserved")
        if reference is None:
            reference = sensors
        elif set(sensors) != set(reference):
            missing = [c for c in reference if c not in sensors]
            extra = [c for c in sensors if c not in reference]
            raise ValueError(
                f"{path}: sensor columns differ from those of {paths[0]}: missing {missing}, "
                f"extra {extra}"
            )
        frames.append(frame[["time", *reference, "attack"]])
    return pd.concat(frames, ignore_index=True)


def sensor_columns(
    frame: pd.DataFrame, time_column: str | None = "time", label_column: str | None = "attack"
) -> list[str]:
    """Return the frame's columns except the time and label columns, in order."""
    return [c for c in frame.columns if c not in (time_column, label_column)]


class MinMaxNormalizer:
    """Per-column min-max scaling to [0, 1], as in the HAI baseline; fit it on train only.

    Columns that are constant on the data it was fitted on map to 0 everywhere. Values
    outside the fitted range map outside [0, 1] (that is often the anomaly).

    Attributes:
        columns: Column names it was fitted on (``None`` when fitted on an array).
        min_: ``(D,)`` float64 per-column minimum.
        max_: ``(D,)`` float64 per-column maximum.
    """

    def __init__(self) -> None:
        self.columns: list[str] | None = None
        self.min_: np.ndarray | None = None
        self.max_: np.ndarray | None = None

    @property
    def fitted(self) -> bool:
        return self.min_ is not None

    def _values(self, data: pd.DataFrame | np.ndarray, fitting: bool = False) -> np.ndarray:
        if isinstance(data, pd.DataFrame):
            if not fitting and self.columns is not None:
                missing = [c for c in self.columns if c not in data.columns]
                if missing:
                    raise ValueError(
                        f"frame lacks columns the normaliser was fitted on: {missing}"
                    )
                data = data[self.columns]
            values = data.to_numpy(dtype=np.float64)
        else:
            values = np.asarray(data, dtype=np.float64)
        if values.ndim != 2:
            raise ValueError(f"expected 2-D data (N, D), got shape {values.shape}")
        if not fitting and self.min_ is not None and values.shape[1] != len(self.min_):
            raise ValueError(
                f"data have {values.shape[1]} columns, the normaliser was fitted on "
                f"{len(self.min_)}"
            )
        return values

    def fit(
        self, data: pd.DataFrame | np.ndarray, columns: Sequence[str] | None = None
    ) -> MinMaxNormalizer:
        """Record per-column minima and maxima.

        Args:
            data: ``(N, D)`` array, or a frame; from a frame, ``columns`` are used (default:
                :func:`sensor_columns`, i.e. all but ``time`` and ``attack``).
            columns: Columns to use from a frame.

        Returns:
            ``self``.
        """
        if isinstance(data, pd.DataFrame):
            self.columns = list(columns) if columns is not None else sensor_columns(data)
            data = data[self.columns]
        elif columns is not None:
            raise ValueError("columns only applies when fitting on a DataFrame")
        else:
            self.columns = None
        values = self._values(data, fitting=True)  # (N, D)
        if len(values) == 0:
            raise ValueError("cannot fit the normaliser on empty data")
        if np.isnan(values).any():
            raise ValueError("cannot fit the normaliser on data containing NaN")
        self.min_ = values.min(axis=0)
        self.max_ = values.max(axis=0)
        return self

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(
                "MinMaxNormalizer is not fitted; call .fit(train_frame) on the training data first"
            )

    def transform(self, data: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Scale ``(N, D)`` data (or a frame holding the fitted columns) to float32 ``(N, D)``."""
        self._check_fitted()
        values = self._values(data)  # (N, D)
        span = self.max_ - self.min_
        inv = np.divide(1.0, span, out=np.zeros_like(span), where=span > 0)  # constant -> 0
        return ((values - self.min_) * inv).astype(np.float32)

    def fit_transform(self, data: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Fit on ``data`` and return it scaled."""
        return self.fit(data).transform(data)

    def inverse_transform(self, scaled: np.ndarray | Tensor) -> np.ndarray:
        """Map scaled ``(N, D)`` values back to original units (constant columns: their value)."""
        self._check_fitted()
        if isinstance(scaled, Tensor):
            scaled = scaled.detach().cpu().numpy()
        return np.asarray(scaled, dtype=np.float64) * (self.max_ - self.min_) + self.min_


class HAIWindows(Dataset):
    """Sliding windows over a HAI-style frame for next-value prediction.

    Item ``i`` covers rows ``s .. s + window`` with ``s = starts[i]``: the model reads the
    ``window`` normalised rows and predicts row ``s + window``; the anomaly score of that
    row is the prediction error (HAI 2021/2022 baseline: window 90, stride 1 for test).
    With ``skip_gaps`` (default), windows whose rows are not evenly spaced in time are
    left out, so no window spans the boundary of two concatenated files.

    Args:
        frame: Frame as returned by :func:`load_hai_csv` or :func:`make_synthetic_process`.
        normalizer: A :class:`MinMaxNormalizer` fitted on the training frame only.
        window: Input length in steps.
        stride: Step between consecutive window starts (e.g. 10 for training as in the
            baseline, 1 to score every test step).
        time_column: Time column (``None``: no times, no gap check; ``times`` holds row
            numbers).
        label_column: 0/1 label column (``None``: labels are all 0, for unlabelled data).
        skip_gaps: Drop windows that span a jump in time.

    Attributes:
        starts: ``(n,)`` int64 first row of each window.
        target_rows: ``(n,)`` int64 row of each window's predicted value (``starts + window``).
        times: ``(n,)`` times of the predicted rows (``DatetimeIndex``, or row numbers).
        labels: ``(n,)`` int64 0/1 labels of the predicted rows.
        columns: The sensor columns, in feature order.

    Items are :class:`~rnnbench.data.Batch` ``(inputs, targets, labels=label)`` without a
    batch dimension: ``inputs`` ``(window, D)`` float32, ``targets`` ``(D,)`` float32, and
    ``labels`` a 0-dim int64 tensor.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        normalizer: MinMaxNormalizer,
        window: int = 90,
        stride: int = 1,
        *,
        time_column: str | None = "time",
        label_column: str | None = "attack",
        skip_gaps: bool = True,
    ):
        for name, value in (("window", window), ("stride", stride)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(normalizer, MinMaxNormalizer) or not normalizer.fitted:
            raise ValueError(
                "normalizer must be a MinMaxNormalizer fitted on the training frame, e.g. "
                "MinMaxNormalizer().fit(train_frame)"
            )
        for col in (time_column, label_column):
            if col is not None and col not in frame.columns:
                raise ValueError(f"frame has no column {col!r}; columns: {list(frame.columns)}")
        self.window, self.stride = int(window), int(stride)
        self.columns = normalizer.columns or sensor_columns(frame, time_column, label_column)
        data = normalizer.transform(frame[self.columns])  # (N, D)
        self.data = torch.from_numpy(data)  # (N, D)
        n_rows = len(frame)

        starts = np.arange(0, max(n_rows - self.window, 0), self.stride, dtype=np.int64)
        if time_column is not None:
            row_times = pd.DatetimeIndex(pd.to_datetime(frame[time_column]))
            if skip_gaps and n_rows > 1:
                steps = np.diff(row_times.asi8)  # (N - 1,) nanoseconds
                period = np.median(steps)
                breaks = np.concatenate([[0], np.cumsum(steps != period)])  # (N,)
                starts = starts[breaks[starts + self.window] == breaks[starts]]
        else:
            row_times = pd.RangeIndex(n_rows)
        if len(starts) == 0:
            raise ValueError(
                f"no windows: the frame has {n_rows} rows, a window needs {self.window + 1} "
                "evenly spaced rows (window + the value to predict)"
            )
        self.starts = starts
        self.target_rows = starts + self.window
        self.times = row_times[self.target_rows]
        if label_column is None:
            all_labels = np.zeros(n_rows, dtype=np.int64)
        else:
            all_labels = frame[label_column].to_numpy().astype(np.int64)
        self._labels = torch.from_numpy(all_labels)  # (N,)
        self.labels = all_labels[self.target_rows]

    @property
    def n_features(self) -> int:
        return self.data.shape[1]

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> Batch:
        start = int(self.starts[index])  # numpy raises IndexError out of range
        end = start + self.window
        x = self.data[start:end]  # (window, D)
        y = self.data[end]  # (D,)
        return Batch(x, y, labels=self._labels[end])  # labels: () 0/1
