"""Data: the Batch type, truncated-BPTT streams, sets of sequences, bundled and synthetic data."""

from rnnbench.data.batch import Batch, as_batch
from rnnbench.data.catalog import DataBundle, build_data, list_datasets
from rnnbench.data.download import ChecksumError, fetch, sha256_file, verify_file
from rnnbench.data.sequence import SequenceDataModule, next_step_pairs, pad_collate
from rnnbench.data.tbptt import StreamBatches, StreamLayoutError, TBPTTDataModule

__all__ = [
    "Batch",
    "ChecksumError",
    "DataBundle",
    "SequenceDataModule",
    "StreamBatches",
    "StreamLayoutError",
    "TBPTTDataModule",
    "as_batch",
    "build_data",
    "fetch",
    "list_datasets",
    "next_step_pairs",
    "pad_collate",
    "sha256_file",
    "verify_file",
]
