"""Sampling from a trained model: text from a PTB language model, piano rolls from a music one.

A language model reads its vocabulary back from the run's data config (PTB at word or
character level, ``compact_vocab`` included); text goes in and out through
:func:`tokenize` / :func:`detokenize`. Every sequence starts after ``<eos>``, as a PTB
sentence does, so the first token of a prime or a scored text is predicted too.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rnnbench.inference.loading import InferenceError, LoadedModel, default_data

EOS, UNK, WORD_SEP = "<eos>", "<unk>", "_"
MIDI_LOWEST = 21  # piano-roll key 0 is A0 (MIDI note 21): the 88 keys of a piano


# ---------------------------------------------------------------- vocabulary and text
def lm_vocab(loaded: LoadedModel, data: dict[str, Any] | None = None) -> Any:
    """The vocabulary of a PTB language model (a :class:`~rnnbench.data.datasets.ptb.Vocab`).

    Args:
        loaded: A language model.
        data: The ``data:`` section it was trained on (default: the run's, or PTB at the
            model's level for a bare checkpoint).

    Raises:
        InferenceError: Not a language model, not PTB data, or a vocabulary of another size.
    """
    from rnnbench.data.datasets.ptb import Vocab, load_ptb

    if loaded.task_name != "lm":
        raise InferenceError(f"the model was trained for task {loaded.task_name}, not a "
                             "language model (task lm)")
    data = dict(data or default_data(loaded) or {})
    if data.get("dataset") not in ("ptb", "ptb_char"):
        raise InferenceError(
            f"text generation reads the vocabulary of the PTB data sets (ptb, ptb_char); this "
            f"model was trained on {data.get('dataset')!r}"
        )
    level = "char" if data["dataset"] == "ptb_char" else data.get("level", "word")
    corpus = load_ptb(level=level, root=data.get("root"))
    vocab = corpus.vocab
    if data.get("compact_vocab"):
        # As rnnbench.data.catalog does: the words of the limited training split, renumbered.
        train = corpus.train[: int(data["limit_tokens"])] if data.get("limit_tokens") else \
            corpus.train
        used = torch.unique(train).tolist()
        vocab = Vocab([vocab.itos[i] for i in used], unk_token=vocab.unk_token)
    size = int(loaded.task_kwargs.get("vocab_size", -1))
    if len(vocab) != size:
        raise InferenceError(
            f"the model has {size} output tokens but the {data['dataset']} vocabulary here has "
            f"{len(vocab)}; name the data it was trained on with --data"
        )
    return vocab


def _level(loaded: LoadedModel) -> str:
    return str(loaded.task_kwargs.get("level", "word"))


def tokenize(text: str, vocab: Any, level: str, what: str = "--prime") -> list[int]:
    """Text -> token ids. Word level splits on white space; character level spells the text
    out, a space becoming PTB's word separator ``_`` and a line break ``<eos>``.

    Raises:
        InferenceError: Tokens outside the vocabulary (all of them named).
    """
    if level == "word":
        tokens = text.split()
    else:
        tokens = []
        for line_no, line in enumerate(text.split("\n")):
            if line_no:
                tokens.append(EOS)
            tokens.extend(WORD_SEP if ch == " " else ch for ch in line)
    unknown = sorted({t for t in tokens if t not in vocab.stoi})
    if unknown:
        shown = ", ".join(repr(t) for t in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        hint = (f" (write {UNK} for a rare word; PTB text is lower case with numbers as N)"
                if level == "word" and UNK in vocab.stoi else
                " (PTB characters are lower case letters, digits as N, and a few signs)")
        raise InferenceError(
            f"{what}: {len(unknown)} {'word' if level == 'word' else 'character'}(s) the model "
            f"does not know: {shown}{more}{hint}"
        )
    return [vocab.stoi[t] for t in tokens]


def detokenize(tokens: Sequence[str], level: str) -> str:
    """Tokens -> readable text: ``<eos>`` ends a line; at character level ``_`` is a space."""
    if level == "word":
        lines: list[list[str]] = [[]]
        for t in tokens:
            if t == EOS:
                lines.append([])
            else:
                lines[-1].append(t)
        return "\n".join(" ".join(line) for line in lines)
    return "".join("\n" if t == EOS else " " if t == WORD_SEP else t for t in tokens)


# ---------------------------------------------------------------- language models
@torch.no_grad()
def sample_text(
    loaded: LoadedModel,
    vocab: Any,
    *,
    length: int,
    prime: str = "",
    temperature: float = 1.0,
    seed: int = 0,
) -> list[str]:
    """Samples ``length`` tokens after ``<eos>`` and the prime.

    Args:
        loaded: A language model.
        vocab: From :func:`lm_vocab`.
        length: Tokens to sample (words or characters).
        prime: Text the sample continues (see :func:`tokenize`).
        temperature: Softmax temperature (> 0): below 1 sharper, above 1 flatter.
        seed: Seed of the sampling generator (same seed, same text).

    Returns:
        The ``length`` sampled tokens (the prime not included).
    """
    _check_sampling(length, temperature)
    module = loaded.module.eval()
    ids = [vocab.stoi[EOS], *tokenize(prime, vocab, _level(loaded))]
    gen = torch.Generator().manual_seed(int(seed))
    out, state = module(torch.tensor([ids]))  # out (1, T, V)
    logits = out[0, -1]  # (V,)
    sampled: list[int] = []
    for _ in range(length):
        probs = torch.softmax(logits.double() / temperature, dim=-1)  # (V,)
        nxt = int(torch.multinomial(probs, 1, generator=gen))
        sampled.append(nxt)
        out, state = module(torch.tensor([[nxt]]), state)  # out (1, 1, V)
        logits = out[0, -1]
    return vocab.decode(sampled)


@torch.no_grad()
def score_text(loaded: LoadedModel, vocab: Any, text: str) -> dict[str, float]:
    """The model's negative log-likelihood of ``text``, read after ``<eos>``.

    Returns:
        ``tokens`` (predicted), ``nll`` (nats per token) and ``ppl`` (``exp(nll)``); at
        character level also ``bpc`` (bits per character).

    Raises:
        InferenceError: Empty text or tokens outside the vocabulary.
    """
    level = _level(loaded)
    ids = tokenize(text, vocab, level, what="--score")
    if not ids:
        raise InferenceError("--score: the text is empty; give the words to score")
    seq = torch.tensor([[vocab.stoi[EOS], *ids]])  # (1, N + 1)
    out, _ = loaded.module.eval()(seq[:, :-1])  # (1, N, V)
    nll = float(torch.nn.functional.cross_entropy(out[0], seq[0, 1:]))
    result = {"tokens": float(len(ids)), "nll": nll, "ppl": math.exp(min(nll, 700.0))}
    if level == "char":
        result["bpc"] = nll / math.log(2.0)
    return result


def _check_sampling(length: int, temperature: float) -> None:
    if int(length) <= 0:
        raise InferenceError(f"--length must be a positive number of steps, got {length}")
    if not math.isfinite(temperature) or temperature <= 0:
        raise InferenceError(f"--temperature must be a positive number, got {temperature}")


# ---------------------------------------------------------------- music
@torch.no_grad()
def sample_piano_roll(loaded: LoadedModel, *, length: int, temperature: float = 1.0,
                      seed: int = 0) -> torch.Tensor:
    """Samples ``length`` frames of a music model, each key an independent Bernoulli.

    The first frame is predicted from silence (a zero frame); each sampled frame is fed back.

    Args:
        loaded: A model of task ``music``.
        length: Frames to sample.
        temperature: Divides the logits before the sigmoid (> 0).
        seed: Seed of the sampling generator.

    Returns:
        ``(length, n_keys)`` float tensor of 0/1.
    """
    if loaded.task_name != "music":
        raise InferenceError(f"piano rolls come from music models; this one is task "
                             f"{loaded.task_name}")
    _check_sampling(length, temperature)
    module = loaded.module.eval()
    n_keys = int(module.task.n_keys)
    gen = torch.Generator().manual_seed(int(seed))
    frame = torch.zeros(1, 1, n_keys)  # (1, 1, K): silence
    state = None
    frames = []
    for _ in range(length):
        out, state = module(frame, state)  # out (1, 1, K) logits
        probs = torch.sigmoid(out[0, -1].double() / temperature)  # (K,)
        keys = torch.bernoulli(probs, generator=gen).float()  # (K,)
        frames.append(keys)
        frame = keys.view(1, 1, n_keys)
    return torch.stack(frames)  # (length, K)


def _replace_atomically(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_piano_roll_png(roll: torch.Tensor, path: str | Path, title: str = "") -> Path:
    """Draws a piano roll (time across, keys up) as a PNG.

    Args:
        roll: ``(T, K)`` 0/1 frames.
        path: The ``.png`` to write (replaced atomically).
        title: Plot title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    steps, keys = roll.shape
    fig, ax = plt.subplots(figsize=(max(4.0, min(16.0, steps / 8)), 4.0), dpi=100)
    ax.imshow(roll.T.numpy(), origin="lower", aspect="auto", cmap="Greys", interpolation="nearest",
              extent=(0, steps, MIDI_LOWEST - 0.5, MIDI_LOWEST + keys - 0.5))
    ax.set_xlabel("time step (frame)")
    ax.set_ylabel("MIDI note")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    try:
        _replace_atomically(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
    return path


def midi_available() -> bool:
    """Whether the ``midi`` extra (mido) is installed."""
    try:
        import mido  # noqa: F401
    except ImportError:
        return False
    return True


def save_midi(roll: torch.Tensor, path: str | Path, *, bpm: float = 120.0,
              velocity: int = 80) -> Path:
    """Writes a piano roll as a one-track MIDI file, one frame per beat (a quarter note, the
    frame of the JSB Chorales rolls). Needs the ``midi`` extra (``pip install
    'rnnbench[midi]'``).

    Args:
        roll: ``(T, K)`` 0/1 frames; key ``k`` is MIDI note ``21 + k``.
        path: The ``.mid`` to write (replaced atomically).
        bpm: Tempo.
        velocity: Loudness of every note (1-127).
    """
    import mido

    ticks = 480  # per beat = per frame
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    on = torch.zeros(roll.shape[1], dtype=torch.bool)  # (K,) keys sounding
    wait = 0
    padded = torch.cat([roll.bool(), torch.zeros(1, roll.shape[1], dtype=torch.bool)])
    for frame in padded:  # a silent frame at the end releases every key
        for key in torch.nonzero(on & ~frame).flatten().tolist():
            track.append(mido.Message("note_off", note=MIDI_LOWEST + key, velocity=0, time=wait))
            wait = 0
        for key in torch.nonzero(frame & ~on).flatten().tolist():
            track.append(mido.Message("note_on", note=MIDI_LOWEST + key, velocity=velocity,
                                      time=wait))
            wait = 0
        on = frame
        wait += ticks
    midi = mido.MidiFile(ticks_per_beat=ticks)
    midi.tracks.append(track)
    _replace_atomically(Path(path), lambda tmp: midi.save(str(tmp)))
    return Path(path)
