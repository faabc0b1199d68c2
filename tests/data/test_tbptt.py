"""Layout of the truncated-BPTT streams: offsets, continuity, epochs, ranks, errors."""

import pytest
import torch

from rnnbench.data import Batch
from rnnbench.data.tbptt import StreamBatches, StreamLayoutError, TBPTTDataModule


def _collect(loader):
    return [(b.inputs.clone(), b.targets.clone()) for b in loader]


@pytest.mark.parametrize("n,batch,bptt", [(1001, 4, 7), (1000, 5, 10), (97, 3, 4)])
def test_row_i_of_batch_k_is_offset_plus_window(n, batch, bptt):
    stream = torch.arange(n)
    loader = StreamBatches(stream, batch, bptt)
    row_len = (n - 1) // batch
    batches = _collect(loader)
    assert len(batches) == len(loader) == -(-row_len // bptt)  # the short last window kept
    for k, (x, y) in enumerate(batches):
        steps = min(bptt, row_len - k * bptt)
        for i in range(batch):
            offset = i * ((n - 1) // batch)
            expected = offset + k * bptt + torch.arange(steps)
            assert torch.equal(x[i], expected), (k, i)
            assert torch.equal(y[i], expected + 1), (k, i)


def test_frames_and_drop_last():
    frames = torch.arange(2 * 101, dtype=torch.float32).view(101, 2)
    loader = StreamBatches(frames, 4, 7, drop_last=True)
    batches = _collect(loader)
    assert len(batches) == 25 // 7 == len(loader)
    x, y = batches[1]
    assert x.shape == (4, 7, 2)
    torch.testing.assert_close(y[:, :-1], x[:, 1:])  # targets are the next frame


def test_two_epochs_are_identical_and_never_shuffled():
    dm = TBPTTDataModule(torch.arange(500), batch_size=5, bptt=6)
    loader = dm.train_dataloader()
    first, second = _collect(loader), _collect(loader)
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_random_shift_and_variable_bptt_are_seeded_and_continuous():
    loader = StreamBatches(torch.arange(2001), 4, 10, random_shift=True, variable_bptt=True,
                           seed=3)
    loader.epoch = 1
    a = _collect(loader)
    b = _collect(loader)
    assert [x.shape for x, _ in a] == [x.shape for x, _ in b]
    # Windows tile each row without gaps: batch k + 1 starts where batch k ended.
    for (x0, _), (x1, _) in zip(a, a[1:]):
        assert torch.equal(x1[:, 0], x0[:, -1] + 1)
    lengths = {x.shape[1] for x, _ in a}
    assert len(lengths) > 2 and min(lengths) >= 5
    loader.epoch = 2
    assert [x.shape for x, _ in _collect(loader)] != [x.shape for x, _ in a]


def test_boundaries_become_reset_masks():
    n = 201
    marks = torch.zeros(n, dtype=torch.bool)
    marks[[0, 57, 120]] = True
    loader = StreamBatches(torch.arange(n), 2, 10, boundaries=marks)
    seen = []
    for batch in loader:
        assert isinstance(batch, Batch) and batch.mask is None and batch.labels is None
        assert batch.reset.shape == batch.inputs.shape and batch.reset.dtype == torch.bool
        seen += batch.inputs[batch.reset].tolist()
    assert sorted(seen) == [0, 57, 120]  # every marked token that lies inside a row
    plain = next(iter(StreamBatches(torch.arange(n), 2, 10)))
    assert isinstance(plain, Batch) and plain.reset is None


def test_rank_rows_split_the_single_process_layout():
    dm = TBPTTDataModule(torch.arange(1000), batch_size=6, bptt=5)
    whole = StreamBatches(torch.arange(1000), 6, 5)
    parts = [StreamBatches(torch.arange(1000), 6, 5, rows=dm.rank_rows(6, r, 3))
             for r in range(3)]
    for k, (x, _) in enumerate(_collect(whole)):
        pieces = [list(p)[k].inputs for p in parts]
        assert torch.equal(torch.cat(pieces), x)
    with pytest.raises(StreamLayoutError, match="not divisible by the world size 4"):
        dm.rank_rows(6, 0, 4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"batch_size": 20, "bptt": 10}, "too short for batch_size=20"),
        ({"batch_size": 4, "bptt": 0}, "bptt must be a positive integer"),
        ({"batch_size": 0, "bptt": 4}, "batch_size must be a positive integer"),
        ({"batch_size": 4, "bptt": -3}, "bptt must be a positive integer"),
    ],
)
def test_bad_layouts_are_clear_errors(kwargs, match):
    with pytest.raises(StreamLayoutError, match=match):
        TBPTTDataModule(torch.arange(150), **kwargs)
