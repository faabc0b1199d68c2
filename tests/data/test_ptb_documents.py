"""PTB with one document per sentence (``data.reset_at: eos``), end to end through the CLI.

``rnnbench fit`` trains in float64; the reference is a hand loop that shares nothing with
rnnbench but the checkpoint's weights: torch.nn.LSTM run one step at a time over rows laid
out by hand, each row's state zeroed right after every ``<eos>``. It must reproduce every
training loss, the validation loss and the test loss that ``rnnbench fit`` logs; the same
loop with the resets ignored or moved by one step must not. Validation and test means are
accumulated in float32 (torchmetrics' default), hence their looser tolerance.
"""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from rnnbench.cli import main
from rnnbench.data.catalog import build_data
from rnnbench.data.datasets.ptb import EOS, load_ptb, sentence_starts

TOKENS, B, T, H, LAYERS, VOCAB = 1201, 4, 10, 8, 2, 10_000
STEPS, VAL_WINDOWS = 6, 5
EVAL_TOL = 3e-6  # a float32 ulp at a loss of 9 is 1e-6


def test_sentence_starts_follow_every_eos():
    eos = 7
    stream = torch.tensor([3, 7, 4, 5, 7, 7, 2])
    assert sentence_starts(stream, eos).tolist() == [True, False, True, False, False, True,
                                                     True]


@pytest.mark.parametrize("compact", [False, True])
def test_catalog_marks_the_token_after_each_eos_in_every_split(compact):
    corpus = load_ptb("word")
    eos = corpus.vocab.stoi[EOS]
    bundle = build_data({"dataset": "ptb", "limit_tokens": 401, "batch_size": 4, "bptt": 10,
                         "reset_at": "eos", "compact_vocab": compact})
    dm = bundle.datamodule
    for stage, raw, loader in (("train", corpus.train, dm.train_dataloader()),
                               ("val", corpus.valid, dm.val_dataloader()),
                               ("test", corpus.test, dm.test_dataloader())):
        # Rows of 100 tokens; a token starts a sentence when the one before it is <eos>.
        first = torch.ones(1, dtype=torch.bool)
        want = torch.cat([first, raw[:399] == eos]).view(4, 100)  # (B, L)
        got = torch.cat([b.reset for b in loader], dim=1)  # (B, L)
        assert torch.equal(got, want), stage
        assert int(got.sum()) > 10
    with pytest.raises(ValueError, match="data.reset_at must be 'eos'"):
        build_data({"dataset": "ptb", "limit_tokens": 401, "batch_size": 4, "bptt": 10,
                    "reset_at": "eol"})


# ---------------------------------------------------------------- the hand loop
def _layout(stream: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of the stream, their targets and reset flags, laid out by hand."""
    eos = load_ptb("word").vocab.stoi[EOS]
    length = (len(stream) - 1) // B
    x = stream[: B * length].view(B, length)  # (B, L)
    y = stream[1 : B * length + 1].view(B, length)  # (B, L)
    prev = torch.cat([torch.tensor([-1]), stream[: B * length - 1]]).view(B, length)  # (B, L)
    return x, y, prev == eos  # (B, L) zero the state before these steps


class HandLM(nn.Module):
    """Embedding, torch.nn.LSTM stepped one token at a time, decoder; weights from a checkpoint."""

    def __init__(self, state_dict: dict[str, torch.Tensor]):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, H)
        self.lstm = nn.LSTM(H, H, LAYERS, batch_first=True)
        self.dec = nn.Linear(H, VOCAB)
        self.double()  # before the copy: the run trains in float64
        with torch.no_grad():
            self.emb.weight.copy_(state_dict["task.embedding.weight"])
            self.dec.weight.copy_(state_dict["task.decoder.weight"])
            self.dec.bias.copy_(state_dict["task.decoder.bias"])
            for layer in range(LAYERS):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(self.lstm, f"{name}_l{layer}").copy_(
                        state_dict[f"backbone.cells.{layer}.{name}"])

    def window(self, x, y, reset, state, shift: int | None):
        """Mean NLL of one window and its final state; ``shift=None`` ignores the resets."""
        nll = []
        for t in range(x.size(1)):
            if shift is not None:
                col = t - shift
                if 0 <= col < x.size(1):
                    keep = (~reset[:, col]).double()[None, :, None]  # (1, B, 1)
                    state = tuple(s * keep for s in state)
            out, state = self.lstm(self.emb(x[:, t : t + 1]), state)  # (B, 1, H)
            nll.append(F.cross_entropy(self.dec(out[:, 0]), y[:, t], reduction="none"))
        return torch.stack(nll, 1).mean(), state  # (), state


def _zeros(rows):
    return tuple(torch.zeros(LAYERS, rows, H, dtype=torch.float64) for _ in range(2))


def _train_losses(model, stream, lr, shift=0):
    x, y, reset = _layout(stream)
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=lr)
    state, losses = _zeros(B), []
    for k in range(STEPS):
        cols = slice(k * T, (k + 1) * T)
        loss, state = model.window(x[:, cols], y[:, cols], reset[:, cols], state, shift)
        state = tuple(s.detach() for s in state)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def _eval_loss(model, stream, windows=None, shift=0):
    x, y, reset = _layout(stream)
    n = -(-x.size(1) // T) if windows is None else windows
    state, total, count = _zeros(B), 0.0, 0
    for k in range(n):
        cols = slice(k * T, (k + 1) * T)
        loss, state = model.window(x[:, cols], y[:, cols], reset[:, cols], state, shift)
        steps = x[:, cols].numel()
        total, count = total + loss.item() * steps, count + steps
    return total / count


def _fit(tmp_path, lr):
    cfg = {
        "seed": 3,
        "data": {"dataset": "ptb", "limit_tokens": TOKENS, "batch_size": B, "bptt": T,
                 "reset_at": "eos"},
        "model": {"cell": "lstm", "hidden_size": H, "num_layers": LAYERS,
                  "init": {"uniform": 0.5}},
        "optim": {"optimizer": "sgd", "lr": lr, "clip": 5.0},
        "trainer": {"max_epochs": 1, "limit_train_batches": STEPS,
                    "limit_val_batches": VAL_WINDOWS, "log_every_n_steps": 1,
                    "accelerator": "cpu", "devices": 1, "precision": "64-true"},
        "logging": {"dir": str(tmp_path / "runs"), "progress_bar": False},
    }
    path = tmp_path / f"docs_lr{lr}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["fit", str(path)]) == 0
    run = tmp_path / "runs" / path.stem / "version_0"
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    train = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    val = [float(r["val/nll"]) for r in rows if r.get("val/nll")]
    test = [float(r["test/nll"]) for r in rows if r.get("test/nll")]
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return train, val, test, last["state_dict"]


def test_fit_zeroes_each_rows_state_exactly_at_sentence_boundaries(tmp_path):
    corpus = load_ptb("word")
    train_stream, val_stream, test_stream = (s[:TOKENS] for s in
                                             (corpus.train, corpus.valid, corpus.test))

    # lr 1e-30 (a config refuses lr <= 0): in float64 the weights never move, so every
    # logged loss checks the state handling alone.
    train, val, test, weights = _fit(tmp_path, 1e-30)
    hand = HandLM(weights)
    want = _train_losses(hand, train_stream, 1e-30)
    assert len(train) == STEPS
    assert train == pytest.approx(want, abs=1e-10, rel=0)
    assert val == pytest.approx([_eval_loss(hand, val_stream, VAL_WINDOWS)], abs=EVAL_TOL, rel=0)
    assert test == pytest.approx([_eval_loss(hand, test_stream)], abs=EVAL_TOL, rel=0)
    # The check has teeth: resets ignored, or one step early or late, change the losses.
    for shift in (None, -1, 1):
        wrong = _train_losses(HandLM(weights), train_stream, 1e-30, shift)
        assert max(abs(a - b) for a, b in zip(wrong, train)) > 1e-4, shift
        assert abs(_eval_loss(hand, test_stream, shift=shift) - test[0]) > 10 * EVAL_TOL, shift

    # lr 1: a trained run (same seed, so the same initial weights) against the hand loop
    # taking the same SGD steps with the same clipping.
    train, val, test, final = _fit(tmp_path, 1.0)
    hand = HandLM(weights)
    assert train == pytest.approx(_train_losses(hand, train_stream, 1.0), abs=1e-9, rel=0)
    hand_final = HandLM(final)
    for (name, p), q in zip(hand.named_parameters(), hand_final.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), atol=1e-9, rtol=0, msg=name)
    assert val == pytest.approx([_eval_loss(hand, val_stream, VAL_WINDOWS)], abs=EVAL_TOL, rel=0)
    assert test == pytest.approx([_eval_loss(hand, test_stream)], abs=EVAL_TOL, rel=0)
