"""Data sets by name: each builds its data module and says which task it feeds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the registry is read by the config schema, which must stay light
    import lightning as L
    import torch

DataBuilder = Callable[..., "DataBundle"]


@dataclass
class DataBundle:
    """A data module plus the task it feeds and the task's data-dependent options."""

    datamodule: L.LightningDataModule
    task: str
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""


_BUILDERS: dict[str, DataBuilder] = {}
_COMMON = {"dataset", "batch_size", "eval_batch_size", "seed"}


def register_dataset(name: str) -> Callable[[DataBuilder], DataBuilder]:
    def deco(fn: DataBuilder) -> DataBuilder:
        _BUILDERS[name] = fn
        return fn

    return deco


def list_datasets() -> list[str]:
    """Names accepted by ``data.dataset`` in configs."""
    return sorted(_BUILDERS)


def build_data(options: dict[str, Any], seed: int = 0) -> DataBundle:
    """Builds the data set named by ``options["dataset"]`` with the remaining options.

    Raises:
        ValueError: Unknown data set (lists the known ones) or an option it does not take.
    """
    options = dict(options)
    name = options.pop("dataset", None)
    if name not in _BUILDERS:
        raise ValueError(
            f"unknown dataset {name!r}; known datasets: {', '.join(list_datasets())} "
            "(set data.dataset in the config)"
        )
    options.setdefault("seed", seed)
    try:
        return _BUILDERS[name](**options)
    except TypeError as err:
        if "unexpected keyword" in str(err):
            import difflib
            import inspect

            key = str(err).rsplit("'", 2)[-2] if str(err).count("'") >= 2 else "?"
            known = [*inspect.signature(_BUILDERS[name]).parameters, *_COMMON]
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown config key data.{key}{hint}: data set {name!r} does not "
                             f"take it; remove it from data: ({err})") from None
        raise


# ---------------------------------------------------------------- language models
@register_dataset("ptb")
def _ptb(
    batch_size: int = 20,
    bptt: int = 35,
    eval_batch_size: int | None = None,
    seed: int = 0,
    level: str = "word",
    root: str | None = None,
    limit_tokens: int | None = None,
    compact_vocab: bool = False,
    reset_at: str | None = None,
    **stream_options: Any,
) -> DataBundle:
    from rnnbench.data.datasets.ptb import EOS, load_ptb, sentence_starts
    from rnnbench.data.tbptt import TBPTTDataModule

    if reset_at not in (None, "eos"):
        raise ValueError(
            f"data.reset_at must be 'eos' (every sentence is a document: the state is zeroed "
            f"right after each <eos>) or null, got {reset_at!r}"
        )
    corpus = load_ptb(level=level, root=root)
    splits = [corpus.train, corpus.valid, corpus.test]
    vocab_size = len(corpus.vocab)
    if limit_tokens:
        splits = [s[: int(limit_tokens)] for s in splits]
    if reset_at == "eos":
        # Marked on the original ids, before compact_vocab renumbers them.
        eos = corpus.vocab.stoi[EOS]
        stream_options["boundaries"] = {
            stage: sentence_starts(s, eos) for stage, s in zip(("train", "val", "test"), splits)
        }
    if compact_vocab:
        # Only the words of the (limited) training split, renumbered 0..K-1, as "Deep
        # Learning from Scratch 2" builds its chapter-5 vocabulary from its first 1,000
        # words (418 outputs, not 10,000). Other words of val/test become <unk>.
        import torch


        train = torch.as_tensor(splits[0])
        used = torch.unique(train)
        lookup = torch.full((vocab_size,), -1, dtype=torch.long)
        lookup[used] = torch.arange(len(used))
        unk = corpus.vocab.stoi.get(corpus.vocab.unk_token or "")
        if unk is not None and lookup[unk] >= 0:
            lookup[lookup < 0] = lookup[unk]
        out = [lookup[torch.as_tensor(s)] for s in splits]
        if any(bool((s < 0).any()) for s in out):
            raise ValueError(
                "data.compact_vocab: the validation or test split holds words that the "
                "limited training split lacks and there is no <unk> among its words to map "
                "them to; raise limit_tokens or drop compact_vocab"
            )
        splits, vocab_size = out, len(used)
    dm = TBPTTDataModule(
        *splits,
        batch_size=batch_size,
        bptt=bptt,
        eval_batch_size=eval_batch_size,
        seed=seed,
        **stream_options,
    )
    return DataBundle(
        dm, "lm", {"vocab_size": vocab_size, "level": level},
        f"Penn Treebank ({level} level)" + (", one document per sentence" if reset_at == "eos"
                                            else ""),
    )


@register_dataset("ptb_char")
def _ptb_char(**options: Any) -> DataBundle:
    return _ptb(level="char", **options)


# ---------------------------------------------------------------- polyphonic music
def _music(name: str):
    def build(
        batch_size: int = 1,
        eval_batch_size: int | None = None,
        seed: int = 0,
        root: str | None = None,
        sort_by_length: bool = False,
        limit_pieces: int | None = None,
        limit_train_pieces: int | None = None,
    ) -> DataBundle:
        from rnnbench.data.datasets.music import load_music
        from rnnbench.data.sequence import SequenceDataModule, next_step_pairs

        data = load_music(name, root=root)
        splits = {k: next_step_pairs(v[: limit_pieces or None]) for k, v in data.items()}
        if limit_train_pieces:  # data-size studies: the first N training pieces, full eval
            splits["train"] = splits["train"][:limit_train_pieces]
        dm = SequenceDataModule(
            splits["train"], splits["valid"], splits["test"],
            batch_size=batch_size, eval_batch_size=eval_batch_size, seed=seed,
            sort_by_length=sort_by_length,
        )
        return DataBundle(dm, "music", {"n_keys": 88}, f"polyphonic music: {name}")

    return build


for _name in ("jsb_chorales", "nottingham", "musedata", "piano_midi"):
    register_dataset(_name)(_music(_name))


# ---------------------------------------------------------------- long-range synthetic
def _splits(x: torch.Tensor, y: torch.Tensor, seed: int, fractions=(0.8, 0.1, 0.1)):
    from rnnbench.data.datasets.synthetic import split_indices

    idx = split_indices(len(x), fractions, seed=seed)
    return [list(zip(x[i], y[i])) for i in idx]


@register_dataset("adding")
def _adding(
    batch_size: int = 32, eval_batch_size: int | None = None, seed: int = 0,
    T: int = 200, n: int = 4000,
) -> DataBundle:
    from rnnbench.data.datasets.synthetic import adding_problem
    from rnnbench.data.sequence import SequenceDataModule

    x, y = adding_problem(n, T, seed=seed)
    train, val, test = _splits(x, y[:, None], seed)
    dm = SequenceDataModule(train, val, test, batch_size=batch_size,
                            eval_batch_size=eval_batch_size, seed=seed, target="sequence")
    return DataBundle(dm, "regression", {"input_dim": 2, "output_dim": 1},
                      f"adding problem, T={T}")


@register_dataset("copy")
def _copy(
    batch_size: int = 32, eval_batch_size: int | None = None, seed: int = 0,
    T: int = 100, n: int = 4000,
) -> DataBundle:
    from rnnbench.data.datasets.synthetic import copy_memory
    from rnnbench.data.sequence import SequenceDataModule

    x, y = copy_memory(n, T, seed=seed)
    train, val, test = _splits(x, y, seed)
    dm = SequenceDataModule(train, val, test, batch_size=batch_size,
                            eval_batch_size=eval_batch_size, seed=seed, target="step")
    return DataBundle(dm, "copy", {"num_symbols": 10}, f"copy memory, T={T}")


@register_dataset("digits")
def _digits(
    batch_size: int = 32, eval_batch_size: int | None = None, seed: int = 0
) -> DataBundle:
    from rnnbench.data.datasets.synthetic import digits_sequences
    from rnnbench.data.sequence import SequenceDataModule

    x, y = digits_sequences(seed=seed)
    train, val, test = _splits(x, y, seed)
    dm = SequenceDataModule(train, val, test, batch_size=batch_size,
                            eval_batch_size=eval_batch_size, seed=seed, target="sequence")
    return DataBundle(dm, "classification", {"input_dim": 8, "num_classes": 10},
                      "scikit-learn 8x8 digits read row by row")


# ---------------------------------------------------------------- HAI-style anomaly detection
def _hai_bundle(train_frame, test_frame, batch_size, eval_batch_size, seed, window,
                train_stride, description) -> DataBundle:
    from rnnbench.data.datasets.hai import HAIWindows, MinMaxNormalizer, sensor_columns
    from rnnbench.data.sequence import SequenceDataModule

    cols = sensor_columns(train_frame)
    norm = MinMaxNormalizer().fit(train_frame[cols])
    train = HAIWindows(train_frame, norm, window=window, stride=train_stride)
    # Validation and test both come from the labelled frame: first half picks the threshold.
    half = len(test_frame) // 2
    val = HAIWindows(test_frame.iloc[:half], norm, window=window, stride=1)
    test = HAIWindows(test_frame.iloc[half:], norm, window=window, stride=1)
    dm = SequenceDataModule(train, val, test, batch_size=batch_size,
                            eval_batch_size=eval_batch_size or 256, seed=seed,
                            target="sequence")
    return DataBundle(dm, "anomaly", {"input_dim": len(cols)}, description)


@register_dataset("hai_synthetic")
def _hai_synthetic(
    batch_size: int = 64, eval_batch_size: int | None = None, seed: int = 0,
    n_steps: int = 20000, n_sensors: int = 8, n_attacks: int = 6, window: int = 90,
    train_stride: int = 10, process_seed: int = 0,
) -> DataBundle:
    from rnnbench.data.datasets.hai import make_synthetic_process

    # The process comes from its own seed, not the run's: every seed of a study (and every
    # variant) sees the same plant and the same attacks; the run seed only shuffles batches
    # and initialises the model.
    if isinstance(process_seed, bool) or not isinstance(process_seed, int) or process_seed < 0:
        raise ValueError(f"data.process_seed must be a non-negative integer, got "
                         f"{process_seed!r}")
    # The generator keeps attacks in the second half: the first half is the training split.
    frame = make_synthetic_process(n_steps=n_steps, n_sensors=n_sensors, n_attacks=n_attacks,
                                   seed=process_seed)
    train, test = frame.iloc[: n_steps // 2], frame.iloc[n_steps // 2 :]
    return _hai_bundle(train, test, batch_size, eval_batch_size, seed, window, train_stride,
                       "synthetic process-control data with injected attacks")


@register_dataset("hai_plant")
def _hai_plant(
    batch_size: int = 64, eval_batch_size: int | None = None, seed: int = 0,
    n_steps: int = 30000, n_attacks: int = 24, window: int = 60, train_stride: int = 10,
    process_seed: int = 0, tapr_delta: int = 10,
) -> DataBundle:
    from rnnbench.data.datasets.plant import make_plant

    # As hai_synthetic: the plant has its own seed, so the run seed varies only the model.
    if isinstance(process_seed, bool) or not isinstance(process_seed, int) or process_seed < 0:
        raise ValueError(f"data.process_seed must be a non-negative integer, got "
                         f"{process_seed!r}")
    frame = make_plant(n_steps=n_steps, n_attacks=n_attacks, seed=process_seed)
    train, test = frame.iloc[: n_steps // 2], frame.iloc[n_steps // 2 :]
    bundle = _hai_bundle(train, test, batch_size, eval_batch_size, seed, window, train_stride,
                         "synthetic three-loop plant with stealthy attacks")
    # An attack's effects outlast its label (a spoofed level shows its true value again):
    # TaPR's ambiguous section after each attack, in steps (minutes).
    bundle.task_kwargs["tapr_delta"] = int(tapr_delta)
    return bundle


@register_dataset("hai_csv")
def _hai_csv(
    train: str | list[str], test: str | list[str], batch_size: int = 64,
    eval_batch_size: int | None = None, seed: int = 0, window: int = 90,
    train_stride: int = 10, time_column: str = "time",
) -> DataBundle:
    from rnnbench.data.datasets.hai import load_hai_csv

    tr = load_hai_csv(train, time_column=time_column)
    te = load_hai_csv(test, time_column=time_column)
    return _hai_bundle(tr, te, batch_size, eval_batch_size, seed, window, train_stride,
                       "HAI-format CSV")
