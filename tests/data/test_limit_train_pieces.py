"""data.limit_train_pieces cuts the training split only (data-size studies)."""

from rnnbench.data.catalog import build_data


def test_limit_train_pieces_keeps_validation_and_test_whole():
    full = build_data({"dataset": "jsb_chorales"}).datamodule.datasets
    part = build_data({"dataset": "jsb_chorales", "limit_train_pieces": 14}).datamodule.datasets
    assert len(part["train"]) == 14 < len(full["train"])
    assert len(part["val"]) == len(full["val"]) and len(part["test"]) == len(full["test"])
    assert [x.shape for x, _ in part["train"]] == [x.shape for x, _ in full["train"][:14]]
