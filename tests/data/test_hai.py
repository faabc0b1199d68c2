"""Tests for HAI-style data: synthetic process, CSV loading and validation, windows."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from rnnbench.data.datasets.hai import (
    ATTACK_KINDS,
    HAIWindows,
    MinMaxNormalizer,
    load_hai_csv,
    make_synthetic_process,
    sensor_columns,
)
from rnnbench.data.sequence import pad_collate

SENSORS = [f"P1_S{i:02d}" for i in range(1, 9)]


@pytest.fixture(scope="module")
def frame():
    return make_synthetic_process(n_steps=8000, n_sensors=8, n_attacks=6, seed=0)


def test_synthetic_process_layout(frame):
    assert list(frame.columns) == ["time", *SENSORS, "attack"]
    assert len(frame) == 8000
    assert (frame["time"].diff().dropna() == pd.Timedelta(seconds=1)).all()
    assert frame["attack"].dtype == np.int64 and set(frame["attack"].unique()) == {0, 1}
    assert all(frame[c].dtype == np.float64 for c in SENSORS)
    assert not frame.isna().any().any()


def test_synthetic_attacks_match_labels_and_vary(frame):
    attacks = frame.attrs["attacks"]
    assert len(attacks) == 6
    assert {a["kind"] for a in attacks} == set(ATTACK_KINDS)
    label = np.zeros(len(frame), dtype=np.int64)
    for a in attacks:
        assert 30 <= a["end"] - a["start"] <= 300
        assert a["start"] >= len(frame) // 2  # the first half is attack-free
        assert 1 <= len(a["sensors"]) <= 3 and set(a["sensors"]) <= set(SENSORS)
        label[a["start"] : a["end"]] = 1
    assert np.array_equal(frame["attack"].to_numpy(), label)
    starts = [a["start"] for a in attacks]
    assert starts == sorted(starts)
    assert all(b["start"] - a["end"] >= 60 for a, b in zip(attacks[:-1], attacks[1:], strict=True))
    # one attack per sixth of the second half: validation and test quarters get three each
    slot = (len(frame) - len(frame) // 2) // 6
    assert [(a["start"] - len(frame) // 2) // slot for a in attacks] == list(range(6))
    frozen = next(a for a in attacks if a["kind"] == "freeze")
    stuck = frame.loc[frozen["start"] : frozen["end"] - 1, frozen["sensors"]]
    assert (stuck.nunique() == 1).all()


def test_synthetic_sensors_are_coupled(frame):
    corr = frame[SENSORS].corr().abs().to_numpy()
    off_diagonal = corr[~np.eye(len(SENSORS), dtype=bool)]
    assert off_diagonal.max() > 0.5


def test_synthetic_process_is_deterministic(frame):
    again = make_synthetic_process(n_steps=8000, seed=0)
    pd.testing.assert_frame_equal(frame, again)
    other = make_synthetic_process(n_steps=8000, seed=1)
    assert not np.allclose(frame[SENSORS].to_numpy(), other[SENSORS].to_numpy())


def test_synthetic_process_arguments():
    clean = make_synthetic_process(n_steps=1000, n_sensors=3, n_attacks=0, seed=0)
    assert clean["attack"].sum() == 0 and clean.attrs["attacks"] == []
    assert sensor_columns(clean) == ["P1_S01", "P1_S02", "P1_S03"]
    with pytest.raises(ValueError, match="too short"):
        make_synthetic_process(n_steps=1700, n_attacks=10)  # 85-step slots
    tight = make_synthetic_process(n_steps=1800, n_attacks=10, seed=3)  # 90-step slots
    assert all(a["end"] - a["start"] == 30 for a in tight.attrs["attacks"])
    with pytest.raises(ValueError, match="n_sensors"):
        make_synthetic_process(n_sensors=0)


def write_split_csvs(frame, tmp_path):
    """Write the frame as two HAI 21.03-style files with per-process label columns."""
    paths = []
    for k, part in enumerate((frame.iloc[:5000], frame.iloc[5000:])):
        out = part.drop(columns="attack").copy()
        out["time"] = out["time"].dt.strftime("%Y-%m-%d %H:%M:%S")
        out["attack"] = part["attack"]
        out["attack_P1"] = part["attack"]
        out["attack_P2"] = 0
        path = tmp_path / f"part{k}.csv"
        out.to_csv(path, index=False)
        paths.append(path)
    return paths


def test_load_hai_csv_roundtrip_and_concatenation(frame, tmp_path):
    loaded = load_hai_csv(write_split_csvs(frame, tmp_path))
    assert list(loaded.columns) == ["time", *SENSORS, "attack"]
    assert loaded.index.equals(pd.RangeIndex(len(frame)))
    np.testing.assert_allclose(loaded[SENSORS].to_numpy(), frame[SENSORS].to_numpy())
    assert np.array_equal(loaded["attack"].to_numpy(), frame["attack"].to_numpy())
    assert (loaded["time"] == frame["time"]).all()


def test_load_hai_csv_label_max_and_hai2204_names(tmp_path):
    path = tmp_path / "hai2204.csv"
    pd.DataFrame(
        {
            "timestamp": ["2022-01-01 00:00:00", "2022-01-01 00:00:01", "2022-01-01 00:00:02"],
            "P1_B2004": [0.1, 0.2, 0.3],
            "P2_SIT01": [5, 5, 6],
            "Attack": [0, 1, 0],
            "attack_P3": [0, 0, 1],
        }
    ).to_csv(path, index=False)
    loaded = load_hai_csv(path, time_column="timestamp")
    assert list(loaded.columns) == ["time", "P1_B2004", "P2_SIT01", "attack"]
    assert loaded["attack"].tolist() == [0, 1, 1]
    assert loaded["P2_SIT01"].dtype == np.float64


def small_csv(tmp_path, name="bad.csv", **columns):
    data = {"time": ["2021-07-11 10:00:00", "2021-07-11 10:00:01", "2021-07-11 10:00:02"]}
    data.update(columns)
    path = tmp_path / name
    pd.DataFrame(data).to_csv(path, index=False)
    return path


def test_csv_without_label_columns_is_explained(tmp_path):
    path = small_csv(tmp_path, P1_S01=[1.0, 2.0, 3.0], label=[0, 0, 1])
    with pytest.raises(ValueError) as info:
        load_hai_csv(path)
    msg = str(info.value)
    assert str(path) in msg and "'P1_S01'" in msg and "'label'" in msg
    assert "attack*" in msg and "'attack_P1'" in msg


def test_csv_with_nan_names_column_and_row(tmp_path):
    path = small_csv(tmp_path, P1_S01=[1.0, 2.0, 3.0], P1_S02=[1.0, None, 3.0], attack=[0, 0, 1])
    with pytest.raises(ValueError, match=r"NaN.*'P1_S02' at row 1 \(line 3") as info:
        load_hai_csv(path)
    assert str(path) in str(info.value)


def test_csv_other_errors(tmp_path):
    path = small_csv(tmp_path, P1_S01=[1.0, "x", 3.0], attack=[0, 0, 1])
    with pytest.raises(ValueError, match=r"numeric.*'P1_S01'.*'x' at row 1"):
        load_hai_csv(path)
    path = small_csv(tmp_path, P1_S01=[1.0, 2.0, 3.0], attack=[0, 2, 1])
    with pytest.raises(ValueError, match="0/1"):
        load_hai_csv(path)
    path = tmp_path / "notime.csv"
    pd.DataFrame({"when": [1, 2], "P1_S01": [1.0, 2.0], "attack": [0, 0]}).to_csv(path)
    with pytest.raises(ValueError, match="no time column 'time'.*'when'"):
        load_hai_csv(path)
    a = small_csv(tmp_path, "a.csv", P1_S01=[1.0, 2.0, 3.0], attack=[0, 0, 1])
    b = small_csv(tmp_path, "b.csv", P1_S02=[1.0, 2.0, 3.0], attack=[0, 0, 1])
    with pytest.raises(ValueError, match=r"b\.csv.*missing \['P1_S01'\]"):
        load_hai_csv([a, b])
    with pytest.raises(FileNotFoundError):
        load_hai_csv(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="at least one"):
        load_hai_csv([])


def test_normalizer_fits_train_only_and_handles_constants():
    train = pd.DataFrame({"a": [0.0, 5.0, 10.0], "b": [3.0, 3.0, 3.0], "attack": [0, 0, 0]})
    test = pd.DataFrame({"a": [20.0, -10.0], "b": [4.0, 3.0], "attack": [1, 0]})
    norm = MinMaxNormalizer().fit(train)
    assert norm.columns == ["a", "b"]
    np.testing.assert_allclose(norm.transform(train), [[0, 0], [0.5, 0], [1, 0]])
    np.testing.assert_allclose(norm.transform(test), [[2, 0], [-1, 0]])  # outside [0, 1]
    assert norm.transform(test).dtype == np.float32
    np.testing.assert_allclose(norm.inverse_transform(norm.transform(train)), train[["a", "b"]])
    with pytest.raises(RuntimeError, match="not fitted"):
        MinMaxNormalizer().transform(train)
    with pytest.raises(ValueError, match=r"\['b'\]"):
        norm.transform(train[["a"]])


def test_windows_items_align_with_rows(frame):
    norm = MinMaxNormalizer().fit(frame.iloc[:4000])
    data = torch.from_numpy(norm.transform(frame))
    ds = HAIWindows(frame, norm, window=90, stride=1)
    assert len(ds) == len(frame) - 90 and ds.n_features == 8 and ds.columns == SENSORS
    for i in (0, 1234, len(ds) - 1):
        x, y, label = ds[i].inputs, ds[i].targets, ds[i].labels
        assert x.shape == (90, 8) and y.shape == (8,) and x.dtype == y.dtype == torch.float32
        assert torch.equal(x, data[i : i + 90]) and torch.equal(y, data[i + 90])
        assert int(label) == frame["attack"].iloc[i + 90] == ds.labels[i]
        assert ds.times[i] == frame["time"].iloc[i + 90]
    assert np.array_equal(ds.labels, frame["attack"].to_numpy()[90:])
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_windows_stride_and_loader(frame):
    norm = MinMaxNormalizer().fit(frame.iloc[:4000])
    ds = HAIWindows(frame.iloc[:4000], norm, window=90, stride=10)
    assert ds.starts[:3].tolist() == [0, 10, 20] and ds.starts[-1] + 90 <= 3999
    batch = next(iter(DataLoader(ds, batch_size=32, collate_fn=pad_collate)))
    assert batch.inputs.shape == (32, 90, 8) and batch.targets.shape == (32, 8)
    assert batch.labels.shape == (32,) and batch.mask.all()


def test_windows_skip_time_gaps_between_files(frame):
    first, second = frame.iloc[:1000].copy(), frame.iloc[1000:2000].copy()
    second["time"] += pd.Timedelta(hours=5)  # a later file
    both = pd.concat([first, second], ignore_index=True)
    norm = MinMaxNormalizer().fit(both)
    ds = HAIWindows(both, norm, window=90)
    assert len(ds) == 2 * (1000 - 90)
    assert all(s + 90 < 1000 or s >= 1000 for s in ds.starts.tolist())
    assert len(HAIWindows(both, norm, window=90, skip_gaps=False)) == 2000 - 90


def test_windows_errors(frame):
    norm = MinMaxNormalizer().fit(frame)
    with pytest.raises(ValueError, match="fitted"):
        HAIWindows(frame, MinMaxNormalizer())
    with pytest.raises(ValueError, match="91 evenly spaced rows"):
        HAIWindows(frame.iloc[:90], norm, window=90)
    with pytest.raises(ValueError, match="window"):
        HAIWindows(frame, norm, window=0)
    with pytest.raises(ValueError, match="no column 'label'"):
        HAIWindows(frame, norm, label_column="label")
    unlabelled = HAIWindows(frame.drop(columns="attack"), norm, window=10, label_column=None)
    assert unlabelled.labels.sum() == 0


def test_bundled_synthetic_data_does_not_change_with_the_run_seed():
    # A study's seeds must vary the model, not the plant: every seed sees the same windows.
    from rnnbench.data.catalog import build_data

    opts = {"dataset": "hai_synthetic", "n_steps": 3000, "n_attacks": 2, "window": 30}

    def test_windows(bundle):
        bundle.datamodule.setup("test")
        return torch.cat([batch.inputs for batch in bundle.datamodule.test_dataloader()])

    a, b = build_data(opts, seed=1), build_data(opts, seed=2)
    assert torch.equal(test_windows(a), test_windows(b))
    c = build_data({**opts, "process_seed": 5}, seed=1)
    assert not torch.equal(test_windows(a), test_windows(c))
    with pytest.raises(ValueError, match="process_seed"):
        build_data({**opts, "process_seed": -1})


def write_hai2204(frame, path):
    """The frame as a HAI 22.04-style file: ``timestamp`` first, ``Attack`` last."""
    out = frame.drop(columns=["time", "attack"]).copy()
    out.insert(0, "timestamp", frame["time"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    out["Attack"] = frame["attack"].to_numpy()
    out.to_csv(path, index=False)
    return path


def test_hai_csv_trains_and_reports_tapr_on_plant_files(tmp_path):
    # The real-HAI path: HAI-format CSV files in, a trained model scored by TaPR out.
    from rnnbench.data.datasets.plant import make_plant
    from rnnbench.experiment import load_config, run

    plant = make_plant(n_steps=6000, n_attacks=4, seed=0)
    train = write_hai2204(plant.iloc[:3000], tmp_path / "train1.csv")
    test = write_hai2204(plant.iloc[3000:], tmp_path / "test1.csv")
    cfg = load_config(None, [f"logging.dir={tmp_path / 'runs'}"])
    cfg["data"] = {"dataset": "hai_csv", "train": str(train), "test": str(test),
                   "time_column": "timestamp", "window": 20, "batch_size": 32}
    cfg["model"].update({"cell": "gru", "hidden_size": 8})
    cfg["trainer"].update({"max_epochs": 1, "accelerator": "cpu", "limit_train_batches": 3})
    cfg["logging"]["progress_bar"] = False
    metrics = run(cfg).metrics
    for key in ("test/tapr_f1", "test/tap", "test/tar", "test/f1_pa", "val/tapr_f1"):
        assert 0.0 <= metrics[key] <= 1.0, key
