"""Data: the Batch type, truncated-BPTT streams, sets of sequences, bundled and synthetic data.

Names load on first use: reading the data-set registry (the config schema does) imports no
torch or Lightning.
"""

from rnnbench._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), {
    "Batch": "batch", "as_batch": "batch",
    "DataBundle": "catalog", "build_data": "catalog", "list_datasets": "catalog",
    "ChecksumError": "download", "sha256_file": "download",
    "verify_file": "download",
    "SequenceDataModule": "sequence", "next_step_pairs": "sequence", "pad_collate": "sequence",
    "StreamBatches": "tbptt", "StreamLayoutError": "tbptt", "TBPTTDataModule": "tbptt",
})
