"""Using trained models: ``rnnbench evaluate``, ``generate`` and ``export`` (rnnbench.inference).

Two tiny models are trained once for the module by ``rnnbench fit`` (a character LM on PTB,
a GRU on a few JSB Chorales pieces). The commands run through the console script's entry
point in this process; two run as real subprocesses (text generation, a refused
checkpoint), and every mistake does under ``-m slow``, to hold what a shell sees.
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from rnnbench.checkpointing import atomic_save, to_plain
from rnnbench.inference import (
    ExportMismatchError,
    InferenceError,
    evaluate,
    export_model,
    lm_vocab,
    load_model,
    sample_piano_roll,
    sample_text,
    score_text,
)
from rnnbench.inference.export import example_inputs
from rnnbench.inference.loading import LoadedModel
from rnnbench.module import RNNModule
from tests.helpers import pickled_callable

CHAR = """\
data: {dataset: ptb_char, batch_size: 4, bptt: 8, limit_tokens: 2000}
model: {cell: lstm, hidden_size: 16}
optim: {optimizer: adam, lr: 0.01}
trainer: {max_epochs: 1, accelerator: cpu, limit_train_batches: 30, limit_val_batches: 4,
          limit_test_batches: 4}
logging: {progress_bar: false}
"""
JSB = """\
data: {dataset: jsb_chorales, batch_size: 4, limit_pieces: 6}
model: {cell: gru, hidden_size: 16}
optim: {optimizer: adam, lr: 0.01}
trainer: {max_epochs: 1, accelerator: cpu, limit_val_batches: 2, limit_test_batches: 2}
logging: {progress_bar: false}
"""


@dataclass
class Runs:
    char: Path  # runs/tiny_char/version_0
    jsb: Path  # runs/tiny_jsb/version_0
    regression: Path  # a bare .ckpt of an untrained regression model (no run folder)


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
            "PYTHONWARNINGS": "ignore"}


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnnbench", *map(str, argv)], cwd=cwd,
                          env=_env(), capture_output=True, text=True, timeout=300)


def _main(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    """The command's entry point in this process (the cases that need no fresh process)."""
    import contextlib
    import io

    from rnnbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    from rnnbench.cli import main

    base = tmp_path_factory.mktemp("trained")
    for name, text in (("tiny_char", CHAR), ("tiny_jsb", JSB)):
        (base / f"{name}.yaml").write_text(text)
        assert main(["fit", str(base / f"{name}.yaml"), f"logging.dir={base / 'runs'}"]) == 0
    reg = RNNModule(task="regression", task_kwargs={"input_dim": 2, "output_dim": 1},
                    cell="gru", hidden_size=8)
    atomic_save(to_plain({"state_dict": reg.state_dict(),
                          "hyper_parameters": dict(reg.hparams)}), base / "regression.ckpt")
    return Runs(base / "runs/tiny_char/version_0", base / "runs/tiny_jsb/version_0",
                base / "regression.ckpt")


def _logged(run: Path, key: str) -> float:
    with open(run / "metrics.csv", newline="") as f:
        values = [row[key] for row in csv.DictReader(f) if row.get(key)]
    return float(values[-1])


# ---------------------------------------------------------------- evaluate
def test_evaluate_reproduces_the_test_metric_fit_logged(runs):
    loaded = load_model(runs.char)
    assert loaded.checkpoint.name == "best.ckpt" and loaded.cfg is not None
    res = evaluate(loaded, "test", overrides=["trainer.limit_test_batches=4"],
                   accelerator="cpu")
    # fit tested best.ckpt on the same 4 batches: evaluate must land on the same number.
    assert res.metrics["test/bpc"] == pytest.approx(_logged(runs.char, "test/bpc"), rel=1e-6)
    assert res.metrics["test/bpc"] == pytest.approx(res.metrics["test/nll"] / math.log(2))
    val = evaluate(loaded, "val", overrides=["trainer.limit_val_batches=4"], accelerator="cpu")
    assert set(val.metrics) == {"val/nll", "val/bpc"}


def test_evaluate_command_prints_the_metrics_table(runs, tmp_path):
    # The runs/NAME folder above version_0 names its newest version.
    code, stdout, stderr = _main(["evaluate", str(runs.jsb.parent), "--split", "val",
                                  "--device", "cpu", "trainer.limit_val_batches=2"], tmp_path)
    assert code == 0, stderr
    row = next(line for line in stdout.splitlines() if "val/nll" in line)
    shown = float(row.replace("│", " ").split()[-1])
    assert shown == pytest.approx(_logged(runs.jsb, "val/nll"), abs=1e-4)
    assert "best.ckpt" in stdout and "val split" in stdout


def test_evaluate_refuses_a_missing_split(runs, tmp_path):
    from rnnbench.data.catalog import _BUILDERS, DataBundle, register_dataset
    from rnnbench.data.sequence import SequenceDataModule, next_step_pairs

    @register_dataset("_no_val_music")
    def _no_val(batch_size: int = 2, eval_batch_size: int | None = None, seed: int = 0):
        pieces = next_step_pairs([torch.zeros(5, 88)] * 4)
        dm = SequenceDataModule(pieces, None, pieces, batch_size=batch_size, seed=seed)
        return DataBundle(dm, "music", {"n_keys": 88}, "four silent pieces")

    data = tmp_path / "no_val.yaml"
    data.write_text("dataset: _no_val_music\n")
    try:
        loaded = load_model(runs.jsb)
        with pytest.raises(InferenceError, match="has no val split"):
            evaluate(loaded, "val", data=str(data), accelerator="cpu")
        res = evaluate(loaded, "test", data=str(data), accelerator="cpu")
        assert res.metrics["test/nll"] > 0
    finally:
        _BUILDERS.pop("_no_val_music")


# ---------------------------------------------------------------- generate
def test_generate_writes_text_of_the_asked_length(runs, tmp_path):
    out = _cli("generate", runs.char, "--length", 40, "--prime", "the market", "--seed", 3,
               "--raw", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    tokens = out.stdout.split()
    loaded = load_model(runs.char)
    vocab = lm_vocab(loaded)
    assert len(tokens) == 40 and all(t in vocab.stoi for t in tokens)
    # The command samples what the library samples: same seed, same text.
    assert sample_text(loaded, vocab, length=40, prime="the market", seed=3) == tokens
    assert sample_text(loaded, vocab, length=40, prime="the market", seed=4) != tokens
    assert _main(["generate", str(runs.char), "--length", "40", "--prime", "the market",
                  "--seed", "3"], tmp_path)[1].startswith("the market")


def test_score_reports_perplexity(runs, tmp_path):
    loaded = load_model(runs.char)
    vocab = lm_vocab(loaded)
    english = score_text(loaded, vocab, "the company said it will sell the shares")
    noise = score_text(loaded, vocab, "qxj#zq$x*jq/zx#qj$zx*qj/x")
    assert english["tokens"] == len("the company said it will sell the shares")
    assert english["bpc"] == pytest.approx(english["nll"] / math.log(2))
    assert english["ppl"] == pytest.approx(math.exp(english["nll"]))
    assert english["ppl"] < noise["ppl"]  # even 30 steps of training learn letter frequencies
    code, stdout, stderr = _main(["generate", str(runs.char), "--score", "the company said"],
                                 tmp_path)
    assert code == 0 and "16 characters" in stdout and "perplexity" in stdout, stderr


def test_word_vocabulary_comes_back_from_a_compact_vocab_config():
    # dlfs2_simple_rnnlm's data: the words of the first 1,001 PTB tokens, renumbered.
    from rnnbench.data.catalog import build_data

    data = {"dataset": "ptb", "batch_size": 10, "bptt": 5, "limit_tokens": 1001,
            "compact_vocab": True}
    bundle = build_data(data)
    module = RNNModule(task="lm", task_kwargs=bundle.task_kwargs, cell="rnn_tanh",
                       hidden_size=8)
    loaded = LoadedModel(module.eval(), Path("x.ckpt"), cfg={"data": data})
    vocab = lm_vocab(loaded)
    assert len(vocab) == bundle.task_kwargs["vocab_size"] == 418
    from rnnbench.data.datasets.ptb import load_ptb

    corpus = load_ptb("word")
    words = corpus.vocab.decode(corpus.train[:1001])
    assert torch.equal(vocab.encode(words), bundle.datamodule.streams["train"])
    text = sample_text(loaded, vocab, length=12, seed=0)
    assert len(text) == 12


def test_generate_music_writes_a_png_and_a_midi_file(runs, tmp_path):
    code, _, stderr = _main(["generate", str(runs.jsb), "--length", "24", "--seed", "5",
                             "--out", "roll.png"], tmp_path)
    assert code == 0, stderr
    png = tmp_path / "roll.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(png).ndim == 3
    roll = sample_piano_roll(load_model(runs.jsb), length=24, seed=5)  # (24, 88)
    assert roll.shape == (24, 88) and set(roll.unique().tolist()) <= {0.0, 1.0}
    mido = pytest.importorskip("mido")
    notes = [m for m in mido.MidiFile(tmp_path / "roll.mid").tracks[0]
             if m.type == "note_on"]
    onsets = int((roll.bool() & ~torch.cat([torch.zeros(1, 88, dtype=torch.bool),
                                            roll.bool()[:-1]])).sum())
    assert len(notes) == onsets  # one note_on per key press of the sampled roll
    assert all(21 <= m.note <= 108 for m in notes)


# ---------------------------------------------------------------- export
def test_torch_export_file_reproduces_the_module(runs, tmp_path):
    loaded = load_model(runs.char)
    res = export_model(loaded, "torch-export", tmp_path / "char.pt2", batch_size=2, steps=3)
    assert res.max_abs_diff <= 1e-5 and res.path.is_file()
    program = torch.export.load(tmp_path / "char.pt2").module()
    args = example_inputs(loaded.module, 2, 3, seed=11)  # inputs the export never saw
    with torch.no_grad():
        out, state = loaded.module(args[0], tuple(args[1:]))
        got = program(*args)
    for want, have in zip((out, *state), got):
        torch.testing.assert_close(have, want, atol=1e-5, rtol=0)
    assert [p.name for p in tmp_path.iterdir()] == ["char.pt2"]  # no temporary left


def test_onnx_export_command_reproduces_the_module(runs, tmp_path):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    code, stdout, stderr = _main(["export", str(runs.jsb), "--format", "onnx", "--steps", "4",
                                  "--batch-size", "2"], tmp_path)
    assert code == 0, stderr
    path = runs.jsb / "export/model.onnx"
    assert str(path) in stdout and "checked" in stdout
    module = load_model(runs.jsb).module
    args = example_inputs(module, 2, 4, seed=12)  # (2, 4, 88) frames and h (1, 2, 16)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"inputs": args[0].numpy(), "h": args[1].numpy()})
    with torch.no_grad():
        want, (h,) = module(args[0], (args[1],))
    torch.testing.assert_close(torch.from_numpy(got[0]), want, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.from_numpy(got[1]), h, atol=1e-5, rtol=0)


def test_an_export_that_fails_its_check_is_not_kept(runs, tmp_path):
    loaded = load_model(runs.char)
    with pytest.raises(ExportMismatchError, match="not kept"):
        export_model(loaded, "torch-export", tmp_path / "m.pt2", atol=-1.0)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- user mistakes
# id, argv (RUN stands for a path of `runs`), what stderr must name, files to create first
BAD = [
    ("run-missing", ["evaluate", "nowhere"], ["nowhere", "does not exist"], {}),
    ("run-not-a-run", ["generate", "adir"], ["adir", "not a run folder"], {"adir/x.txt": b""}),
    ("ckpt-garbage", ["export", "bad.ckpt"], ["bad.ckpt", "unreadable"],
     {"bad.ckpt": b"not a checkpoint" * 8}),
    ("ckpt-pickled-code", ["evaluate", "evil.ckpt"], ["evil.ckpt", "pickled Python code"],
     {"evil.ckpt": pickled_callable()}),
    ("prime-unknown", ["generate", "CHAR", "--prime", "Hello"], ["'H'", "does not know"], {}),
    ("prime-on-music", ["generate", "JSB", "--prime", "x"], ["--prime", "music"], {}),
    ("generate-regression", ["generate", "REG"], ["regression", "evaluate"], {}),
    ("bare-ckpt-no-data", ["evaluate", "REG"], ["--data"], {}),
    ("data-other-task", ["evaluate", "CHAR", "--data", "jsb_chorales"], ["task music"], {}),
    ("override-model", ["evaluate", "CHAR", "model.hidden_size=3"], ["data.KEY=VALUE"], {}),
    ("eval-batch-too-big", ["evaluate", "CHAR", "data.eval_batch_size=100000"],
     ["too short"], {}),
    ("export-needs-steps", ["export", "REG"], ["--steps"], {}),
    ("temperature-zero", ["generate", "CHAR", "--temperature", "0"], ["--temperature"], {}),
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _mistake(case, runs: Runs, cwd: Path, fresh_process: bool) -> tuple[int, str, bool]:
    """Runs one mistake in an empty folder: exit code, stderr, whether nothing was written."""
    _, argv, _, files = case
    for rel, content in files.items():
        (cwd / rel).parent.mkdir(parents=True, exist_ok=True)
        (cwd / rel).write_bytes(content)
    before = _tree(cwd)
    paths = {"CHAR": runs.char, "JSB": runs.jsb, "REG": runs.regression}
    argv = [str(paths.get(a, a)) for a in argv]
    if fresh_process:
        out = _cli(*argv, cwd=cwd)
        code, stderr = out.returncode, out.stderr
    else:
        code, _, stderr = _main(argv, cwd)
    return code, stderr, _tree(cwd) == before


def _check_mistake(case, code: int, stderr: str, unchanged: bool) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]
    assert code == 2, stderr[-3000:]
    assert stderr.startswith(f"rnnbench {case[1][0]}: error:"), stderr
    assert len(stderr.strip().splitlines()) == 1, stderr  # one paragraph
    for name in case[2]:
        assert name in stderr, (name, stderr)
    assert unchanged, "the command wrote files"


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_a_mistake_is_one_paragraph(case, runs, tmp_path):
    # The console script's entry point in this process: the same code a shell runs.
    _check_mistake(case, *_mistake(case, runs, tmp_path, fresh_process=False))


def test_a_refused_checkpoint_is_one_paragraph_from_the_real_command(runs, tmp_path):
    case = next(c for c in BAD if c[0] == "ckpt-pickled-code")
    _check_mistake(case, *_mistake(case, runs, tmp_path, fresh_process=True))


@pytest.mark.slow
def test_every_mistake_is_one_paragraph_from_the_real_command(runs, tmp_path):
    def one(case):
        cwd = tmp_path / case[0]
        cwd.mkdir()
        return _mistake(case, runs, cwd, fresh_process=True)

    with ThreadPoolExecutor(max_workers=3) as pool:
        for case, outcome in zip(BAD, pool.map(one, BAD)):
            _check_mistake(case, *outcome)
