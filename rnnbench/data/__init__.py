"""Data: truncated-BPTT streams, sets of sequences, bundled and synthetic data sets."""

from rnnbench.data.catalog import DataBundle, build_data, list_datasets
from rnnbench.data.download import ChecksumError, fetch, sha256_file, verify_file
from rnnbench.data.sequence import SequenceDataModule, next_step_pairs, pad_collate
from rnnbench.data.tbptt import StreamBatches, StreamLayoutError, TBPTTDataModule

__all__ = [
    "ChecksumError",
    "DataBundle",
    "SequenceDataModule",
    "StreamBatches",
    "StreamLayoutError",
    "TBPTTDataModule",
    "build_data",
    "fetch",
    "list_datasets",
    "next_step_pairs",
    "pad_collate",
    "sha256_file",
    "verify_file",
]
