"""Every user mistake is one paragraph, a known exit code, the key or file named, nothing written.

Table-driven: each case runs the real ``rnnbench`` command in a fresh process, in an empty
working folder, and checks the exit code, that stderr holds no traceback, that it names what
to fix, and that no file or folder appeared. The cases run a few at a time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import pickled_callable

ROOT = Path(__file__).resolve().parents[1]
FIT = str(ROOT / "configs/experiment/zaremba_small.yaml")
QUICK = str(ROOT / "configs/experiment/quickstart.yaml")
STUDY = str(ROOT / "configs/study/jsb_tiny.yaml")
LR = "lr: {low: 0.001, high: 0.01}"  # a whole range: jsb_tiny's override lowers its top


@dataclass
class Case:
    """One mistake: the command line, what stderr must name, and the expected exit code."""

    id: str
    argv: list[str]
    names: list[str]
    code: int = 2
    setup: Callable[[Path], None] | None = None
    writes: bool = False  # a diverged run keeps its folder: it is a run that happened


def _fit(*over: str) -> list[str]:
    return ["fit", FIT, "logging.dir=runs", "data.limit_tokens=2000", *over]


def _study(*over: str, flags: tuple[str, ...] = ()) -> list[str]:
    return ["study", "run", STUDY, "logging.dir=runs", "--no-live", *flags, *over]


def _write(name: str, content: bytes | str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    return setup


def _run_with_ckpt(content: bytes) -> Callable[[Path], None]:
    """A finished-looking run folder of zaremba_small whose last.ckpt is ``content``."""
    return _write("runs/zaremba_small/version_0/checkpoints/last.ckpt", content)


CASES: list[Case] = [
    # ---- fit: the config file itself
    Case("missing-file", ["fit", "nope.yaml"], ["nope.yaml", "does not exist"]),
    Case("folder-as-file", ["fit", "adir"], ["adir", "is a folder"],
         setup=lambda t: (t / "adir").mkdir()),
    Case("bad-yaml", ["fit", "bad.yaml"], ["bad.yaml", "not valid YAML"],
         setup=_write("bad.yaml", "model: {cell: [lstm\n")),
    Case("yaml-list", ["fit", "list.yaml"], ["list.yaml", "must hold a mapping"],
         setup=_write("list.yaml", "- a\n- b\n")),
    Case("binary-file", ["fit", "bin.yaml"], ["bin.yaml"],
         setup=_write("bin.yaml", b"\xff\xfe\x00garbage")),
    Case("defaults-not-mapping", ["fit", "d.yaml"], ["defaults must be a mapping"],
         setup=_write("d.yaml", "defaults: [model]\n")),
    Case("defaults-unknown-group", ["fit", "d.yaml"], ["unknown group 'modle'"],
         setup=_write("d.yaml", "defaults: {modle: lstm_2x200}\n")),
    Case("defaults-unknown-file", ["fit", "d.yaml"], ["model=lstm_9x9", "known model configs"],
         setup=_write("d.yaml", "defaults: {model: lstm_9x9}\n")),
    Case("quick-without-section", ["fit", "q.yaml", "--quick"], ["--quick", "q.yaml",
                                                                 "no quick: section"],
         setup=_write("q.yaml", "defaults: {data: ptb}\n")),
    # ---- fit: overrides and values
    Case("override-no-equals", _fit("optim.lr"), ["optim.lr", "section.key=value"]),
    Case("override-empty-key", _fit("=3"), ["=3"]),
    Case("unknown-top-level", _fit("modle.cell=gru"), ["modle", "did you mean 'model'"]),
    Case("unknown-model-key", _fit("model.hiden_size=3"), ["model.hiden_size", "hidden_size"]),
    Case("unknown-optim-key", _fit("optim.lrr=0.1"), ["optim.lrr", "did you mean 'lr'"]),
    Case("unknown-trainer-key", _fit("trainer.max_epoch=2"), ["trainer.max_epoch",
                                                              "max_epochs"]),
    Case("unknown-data-key", _fit("data.batch_sise=4"), ["data.batch_sise", "batch_size"]),
    Case("unknown-logging-key", _fit("logging.csvv=true"), ["logging.csvv"]),
    Case("unknown-checkpoint-key", _fit("checkpoint.every=3"), ["checkpoint.every"]),
    Case("lr-string", _fit("optim.lr=fast"), ["optim.lr", "expected a number", "fast"]),
    Case("lr-typo-number", _fit("optim.lr=1e-3x"), ["optim.lr", "expected a number"]),
    Case("lr-zero", _fit("optim.lr=0"), ["optim.lr", "positive"]),
    Case("lr-negative", _fit("optim.lr=-0.1"), ["optim.lr", "positive"]),
    Case("lr-nan", _fit("optim.lr=.nan"), ["optim.lr"]),
    Case("lr-inf", _fit("optim.lr=.inf"), ["optim.lr", "finite"]),
    Case("clip-negative", _fit("optim.clip=-1"), ["optim.clip", ">= 0"]),
    Case("music-dropout-one", ["fit", str(ROOT / "configs/experiment/chung2014_jsb.yaml"),
                               "logging.dir=runs", "task.dropout=1"], ["task.dropout", "[0, 1)"]),
    Case("momentum-negative", _fit("optim.momentum=-1"), ["optim.momentum", ">= 0"]),
    Case("weight-decay-negative", _fit("optim.weight_decay=-0.1"), ["optim.weight_decay"]),
    Case("dropout-one", _fit("model.dropout=1.0"), ["model.dropout", "[0, 1)"]),
    Case("dropout-negative", _fit("model.dropout=-0.5"), ["model.dropout", "[0, 1)"]),
    Case("embedding-dropout", _fit("model.embedding_dropout=2"), ["model.embedding_dropout"]),
    Case("hidden-abc", _fit("model.hidden_size=abc"), ["model.hidden_size", "integer"]),
    Case("hidden-float", _fit("model.hidden_size=1.5"), ["model.hidden_size", "integer"]),
    Case("hidden-zero", _fit("model.hidden_size=0"), ["model.hidden_size", "positive"]),
    Case("layers-zero", _fit("model.num_layers=0"), ["model.num_layers", "positive"]),
    Case("bidirectional-maybe", _fit("model.bidirectional=maybe"), ["model.bidirectional",
                                                                    "true or false"]),
    Case("impl-unknown", _fit("model.impl=turbo"), ["model.impl", "fused"]),
    Case("optimizer-unknown", _fit("optim.optimizer=lbfgs"), ["optim.optimizer", "adam"]),
    Case("loss-reduction", _fit("optim.loss_reduction=max"), ["optim.loss_reduction"]),
    Case("cuda-graphs", _fit("optim.cuda_graphs=sometimes"), ["optim.cuda_graphs"]),
    Case("check-finite", _fit("optim.check_finite_every=often"), ["optim.check_finite_every"]),
    Case("progress-every", _fit("logging.progress_every=0"), ["logging.progress_every"]),
    Case("ckpt-every-zero", _fit("checkpoint.every_n_train_steps=0"),
         ["checkpoint.every_n_train_steps"]),
    Case("seed-negative", _fit("seed=-1"), ["seed"]),
    Case("seed-string", _fit("seed=abc"), ["seed"]),
    Case("max-epochs-zero", _fit("trainer.max_epochs=0"), ["trainer.max_epochs"]),
    Case("check-val-every-zero", _fit("trainer.check_val_every_n_epoch=0"),
         ["trainer.check_val_every_n_epoch", ">= 1"]),
    Case("trainer-refused", _fit("trainer.max_time=xyz"),  # Lightning's own check
         ["trainer: section", "DD:HH:MM:SS"]),
    Case("gradient-clip-val", _fit("trainer.gradient_clip_val=1"), ["optim.clip"]),
    Case("group-switch-unknown", _fit("model=lstm_2x20"), ["lstm_2x20", "lstm_2x200"]),
    Case("dataset-unknown", _fit("data.dataset=ptbb"), ["data.dataset", "did you mean 'ptb'"]),
    Case("batch-size-zero", _fit("data.batch_size=0"), ["data.batch_size", "positive"]),
    Case("bptt-negative", _fit("data.bptt=-3"), ["data.bptt", "positive"]),
    Case("ptb-level", _fit("data.level=morse"), ["level"]),
    Case("stream-too-short", _fit("data.batch_size=1000", "data.bptt=1000"), ["too short"]),
    Case("cell-typo", _fit("model.cell=lstn"), ["lstn", "did you mean 'lstm'"]),
    Case("cell-kwarg", _fit("model.cell_kwargs={nope: 1}"), ["model.cell_kwargs", "nope"]),
    Case("init-unknown", _fit("model.init={bogus: 1}"), ["bogus"]),
    Case("scheduler-unknown", _fit("optim.scheduler={name: warp}"), ["warp"]),
    Case("bidirectional-lm", _fit("model.bidirectional=true"), ["bidirectional"]),
    Case("log-dir-under-file", ["fit", FIT, "logging.dir=afile/runs", "data.limit_tokens=2000"],
         ["afile/runs", "logging.dir"], setup=_write("afile", "x")),
    # ---- fit --resume and checkpoints
    Case("resume-nothing", _fit("--resume"), ["--resume", "last.ckpt"]),
    Case("resume-empty-ckpt", _fit("--resume"), ["last.ckpt", "unreadable"],
         setup=_run_with_ckpt(b"")),
    Case("resume-garbage-ckpt", _fit("--resume"), ["last.ckpt", "unreadable"],
         setup=_run_with_ckpt(b"this is not a checkpoint at all" * 10)),
    Case("resume-truncated-ckpt", _fit("--resume"), ["last.ckpt", "unreadable"],
         setup=_run_with_ckpt(b"PK\x03\x04" + b"\x00" * 64)),
    Case("resume-pickled-callable", _fit("--resume"), ["last.ckpt"],
         setup=_run_with_ckpt(pickled_callable())),
    Case("diverged", _fit("optim.lr=3e38", "model.hidden_size=8", "data.batch_size=4",
                          "data.bptt=8", "trainer.max_epochs=1", "logging.progress_bar=false"),
         ["loss became inf", "lower the learning rate"], code=3, writes=True),
    # ---- study run / worker
    Case("study-missing-file", ["study", "run", "nope.yaml"], ["nope.yaml"]),
    Case("study-no-section", ["study", "run", FIT], ["no study: section"]),
    Case("study-trials-zero", _study("study.trials_per_variant=0"),
         ["study.trials_per_variant"]),
    Case("study-trials-abc", _study("study.trials_per_variant=abc"),
         ["study.trials_per_variant"]),
    Case("study-metric-train", _study("study.metric=train/loss"), ["study.metric"]),
    Case("study-test-metric", _study("study.test_metric=test/f1pa"), ["study.test_metric"]),
    Case("study-sampler", _study("study.sampler=foo"), ["sampler", "foo"]),
    Case("study-pruner", _study("study.pruner=foo"), ["pruner", "foo"]),
    Case("study-direction", _study("study.direction=up"), ["study.direction"]),
    Case("study-space-empty", _study("study.space=null"), ["study.space"]),
    Case("study-name", _study("study.name=bad name!"), ["study.name"]),
    Case("study-paper", _study("study.paper={source: nope, dataset: x}"), ["study.paper"]),
    Case("study-variant-cell", _study("study.variants={cells: [lstn]}"), ["lstn"]),
    # A range some trials could not run with fails before the study starts, not per trial.
    Case("study-range-dropout",
         _study(f"study.space={{{LR}, task.dropout: {{low: 0.2, high: 1.5}}}}"),
         ["task.dropout", "[0.2, 1.5]", "1.5", "narrow"]),
    Case("study-range-choice", _study(f"study.space={{{LR}, optimizer: [adam, adamm]}}"),
         ["optimizer", "'adamm'", "drop"]),
    Case("study-range-low-end", _study("model.param_budget=null",
                                       f"study.space={{{LR}, hidden_size: {{low: 0, high: 8}}}}"),
         ["model.hidden_size", "low end", "hidden_size=0"]),
    Case("study-workers-zero", _study(flags=("--workers", "0")), ["--workers"]),
    Case("study-lr-typed", _study("optim.lr=fast"), ["optim.lr", "expected a number"]),
    Case("storage-scheme", _study(flags=("--storage", "mongodb://x/y")), ["mongodb"]),
    Case("storage-sqlite-proc", _study(flags=("--storage", "sqlite:////proc/x/study.db")),
         ["/proc/x/study.db"]),
    Case("storage-journal-under-file",
         _study(flags=("--storage", "journal:afile/study.journal")),
         ["afile/study.journal"], setup=_write("afile", "x")),
    Case("worker-unknown-study",
         ["study", "worker", "--storage", "journal:j.journal", "--study", "nope"],
         ["nope"], setup=_write("j.journal", "")),
    Case("worker-torn-journal",
         ["study", "worker", "--storage", "journal:j.journal", "--study", "nope"],
         ["j.journal", "line 2"],
         setup=_write("j.journal", '{"op_code": 0, "worker_id": "a"}\n{"op_co\n{"a": 1}\n')),
    # ---- report
    Case("report-unknown-study", ["report", "nope"], ["nope"]),
    Case("report-format", ["report", "nope", "--format", "pdf"], ["pdf"]),
    Case("report-storage-and-dir", ["report", "x", "--storage", "sqlite:///a.db", "--dir", "b"],
         ["--storage", "--dir"]),
    Case("report-paper", ["report", "nope", "--paper", "bogus"], ["bogus"]),
    Case("report-garbage-journal", ["report", "x", "--storage", "journal:g.journal"],
         ["g.journal", "line 1"], setup=_write("g.journal", "garbage, not json\n")),
    # ---- cells, bench
    Case("cells-input-size", ["cells", "--input-size", "0"], ["--input-size"]),
    Case("bench-cell", ["bench", "--cells", "lstn"], ["lstn"]),
    Case("bench-impl", ["bench", "--impls", "turbo"], ["turbo"]),
    Case("bench-shape", ["bench", "--shapes", "huge"], ["huge"]),
    Case("bench-mode", ["bench", "--modes", "fly"], ["fly"]),
]


@dataclass
class Outcome:
    code: int
    stderr: str
    before: set[str] = field(default_factory=set)
    after: set[str] = field(default_factory=set)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _run(case: Case, tmp: Path) -> Outcome:
    tmp.mkdir(parents=True, exist_ok=True)
    if case.setup:
        case.setup(tmp)
    before = _tree(tmp)
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
           "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "rnnbench", *case.argv], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=300)
    return Outcome(proc.returncode, proc.stderr, before, _tree(tmp))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, request) -> dict[str, Outcome]:
    """Every selected case run once, three processes at a time."""
    base = tmp_path_factory.mktemp("bad_inputs")
    wanted = {item.callspec.params["case"].id for item in request.session.items
              if isinstance(getattr(item, "callspec", None) and
                            item.callspec.params.get("case"), Case)}
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {c.id: pool.submit(_run, c, base / c.id) for c in CASES if c.id in wanted}
        return {k: f.result() for k, f in futures.items()}


def test_there_are_sixty_cases_or_more():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_paragraph(case: Case, outcomes: dict[str, Outcome]):
    out = outcomes[case.id]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.code == case.code, out.stderr[-3000:]
    for name in case.names:
        assert name in out.stderr, (name, out.stderr[-3000:])
    # Ours start "rnnbench fit: error:"; argparse's put the usage line first.
    assert any(line.startswith("rnnbench ") for line in out.stderr.splitlines()), out.stderr
    if not case.writes:
        assert out.after == out.before, sorted(out.after - out.before)
    assert "weights_only=False" not in out.stderr
