"""Published reference numbers the presets reproduce, stored as data (source, table, value)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).with_name("published.csv")

SOURCES = {
    "chung2014": "Chung, Gulcehre, Cho & Bengio (2014), Empirical evaluation of gated "
    "recurrent neural networks on sequence modeling",
    "bai2018": "Bai, Kolter & Koltun (2018), An empirical evaluation of generic convolutional "
    "and recurrent networks for sequence modeling",
    "zaremba2014": "Zaremba, Sutskever & Vinyals (2014), Recurrent neural network "
    "regularization",
    "dlfs2": 'Saito, "Deep Learning from Scratch 2" (2018), chapter 6',
    "mikolov2011": "Mikolov, Deoras, Kombrink, Burget & Cernocky (2011), Empirical evaluation "
    "and combination of advanced language modeling techniques (Interspeech)",
}


@dataclass(frozen=True)
class Published:
    """One published figure."""

    source: str
    table: str
    dataset: str
    variant: str
    metric: str
    split: str
    value: float
    params: int | None
    notes: str

    @property
    def citation(self) -> str:
        return f"{SOURCES.get(self.source, self.source)}, {self.table}"


@lru_cache(maxsize=1)
def load_published() -> tuple[Published, ...]:
    """Every stored figure, in file order."""
    with DATA.open(newline="") as fh:
        return tuple(
            Published(
                source=row["source"], table=row["table"], dataset=row["dataset"],
                variant=row["variant"], metric=row["metric"], split=row["split"],
                value=float(row["value"]),
                params=int(row["params"]) if row["params"] else None,
                notes=row["notes"] or "",
            )
            for row in csv.DictReader(fh)
        )


def rows_of(source: str, dataset: str) -> list[str]:
    """The variants (rows) a source publishes for a data set, sorted: ``gru, lstm, ...``."""
    return sorted({p.variant for p in load_published() if (p.source, p.dataset) == (source,
                                                                                  dataset)})


def lookup(
    source: str, dataset: str, variant: str, metric: str, split: str = "test"
) -> Published | None:
    """The published figure for one (source, data set, variant, metric, split), if any."""
    for item in load_published():
        if (item.source, item.dataset, item.variant, item.metric, item.split) == (
            source, dataset, variant, metric, split
        ):
            return item
    return None
