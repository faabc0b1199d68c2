"""rnnbench bench end to end on the tiny shape: table, JSON rows, user errors."""

import json

import pytest

from rnnbench.bench import SHAPES, BenchCase, run_case
from rnnbench.cli import main

FIELDS = {"cell", "impl", "shape", "mode", "device", "batch", "hidden", "steps", "layers",
          "status", "effective_impl", "tokens_per_s", "median_ms", "min_ms", "times_ms",
          "peak_mb"}


def test_bench_tiny_json(tmp_path, capsys):
    out = tmp_path / "sub" / "bench.json"
    rc = main(["bench", "--shapes", "tiny", "--cells", "lstm", "--impls", "fused,reference",
               "--modes", "train,infer", "--device", "cpu", "--repeats", "2", "--warmup", "1",
               "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "tokens/s" in printed and "reference" in printed
    payload = json.loads(out.read_text())
    assert payload["meta"]["device"] == "cpu" and payload["meta"]["repeats"] == 2
    rows = payload["results"]
    assert {(r["impl"], r["mode"]) for r in rows} == {
        (i, m) for i in ("fused", "reference") for m in ("train", "infer")
    }
    for r in rows:
        assert FIELDS <= r.keys()
        assert r["status"] == "ok" and r["cell"] == "lstm" and r["shape"] == "tiny"
        assert r["effective_impl"] == r["impl"]
        assert (r["batch"], r["hidden"], r["steps"], r["layers"]) == SHAPES["tiny"]
        assert len(r["times_ms"]) == 2 and r["tokens_per_s"] > 0 and r["peak_mb"] >= 0
    assert not list(out.parent.glob("*.tmp"))  # atomic write leaves no temp file


def test_missing_impl_is_skipped_with_reason():
    row = run_case(BenchCase("mgu", "fused", *SHAPES["tiny"], "infer", "cpu"), 0, 1)
    assert row["status"] == "skipped" and "no fused kernel" in row["reason"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cells", "nope"], "unknown cell 'nope'"),
        (["--impls", "cudnn"], "unknown impl 'cudnn'"),
        (["--shapes", "huge"], "unknown shape 'huge'"),
        (["--modes", "eval"], "unknown mode 'eval'"),
        (["--cells", ""], "--cells is empty"),
    ],
)
def test_bad_input_exits_2(argv, message, capsys):
    assert main(["bench", "--device", "cpu", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cuda_without_cuda_exits_2(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "--device", "cuda", "--shapes", "tiny"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
