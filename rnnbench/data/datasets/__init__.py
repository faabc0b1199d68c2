"""Data sets: PTB, polyphonic music, synthetic tasks and HAI-style control data."""

from rnnbench.data.datasets.hai import (
    ATTACK_KINDS,
    HAIWindows,
    MinMaxNormalizer,
    load_hai_csv,
    make_synthetic_process,
    sensor_columns,
)
from rnnbench.data.datasets.music import MUSIC_ALIASES, MUSIC_DATASETS, load_music, music_name
from rnnbench.data.datasets.plant import PLANT_ATTACK_KINDS, PLANT_SENSORS, make_plant
from rnnbench.data.datasets.ptb import Corpus, Vocab, load_ptb
from rnnbench.data.datasets.synthetic import (
    adding_problem,
    copy_memory,
    digits_sequences,
    split_indices,
)

__all__ = [
    "ATTACK_KINDS",
    "MUSIC_ALIASES",
    "MUSIC_DATASETS",
    "Corpus",
    "HAIWindows",
    "MinMaxNormalizer",
    "PLANT_ATTACK_KINDS",
    "PLANT_SENSORS",
    "Vocab",
    "adding_problem",
    "copy_memory",
    "digits_sequences",
    "load_hai_csv",
    "load_music",
    "load_ptb",
    "make_plant",
    "make_synthetic_process",
    "music_name",
    "sensor_columns",
    "split_indices",
]
