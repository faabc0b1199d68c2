"""``rnnbench generate``: text from a language model, a piano roll from a music model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = """\
Sample from a trained model. A language model (PTB, word or character level) writes
--length tokens after --prime, or with --score TEXT reports the perplexity of TEXT. A music
model samples --length frames and saves the piano roll as a PNG, and as a MIDI file when the
midi extra is installed (pip install 'rnnbench[midi]').
"""


def add_parser(sub: Any) -> None:
    from rnnbench.cli._use import add_run_arguments

    p = sub.add_parser("generate", help="sample text or a piano roll from a trained model",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--length", type=int, default=None,
                   help="tokens (words or characters) or frames to sample (default: 100 "
                   "tokens, 64 frames)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="sampling temperature, > 0 (default 1; lower: safer, higher: wilder)")
    p.add_argument("--prime", default="", help="language models: text the sample continues")
    p.add_argument("--score", metavar="TEXT",
                   help="language models: report the perplexity of TEXT instead of sampling")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--raw", action="store_true",
                   help="language models: print the sampled tokens separated by spaces, as "
                   "the vocabulary spells them (<eos>, _)")
    p.add_argument("--out", metavar="PATH", default="piano_roll.png",
                   help="music: the PNG to write; the MIDI file takes its name with .mid "
                   "(default: piano_roll.png)")
    p.add_argument("--data", metavar="NAME|FILE",
                   help="language models: the data (vocabulary) the model was trained on, "
                   "for a checkpoint outside its run folder (default: PTB at its level)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnbench.cli._use import load, user_errors
    from rnnbench.cli.base import CLIError

    loaded = load(args)
    with user_errors():
        if loaded.task_name == "lm":
            return _text(args, loaded)
        if loaded.task_name == "music":
            for flag, value in (("--prime", args.prime), ("--score", args.score),
                                ("--data", args.data)):
                if value:
                    raise CLIError(f"{flag} applies to language models; {args.run} is a music "
                                   "model (it samples piano rolls): drop it")
            return _music(args, loaded)
    raise CLIError(
        f"generate samples from language models (task lm) and music models (task music); "
        f"{args.run} is a {loaded.task_name} model. Use rnnbench evaluate for its metrics"
    )


def _text(args: argparse.Namespace, loaded: Any) -> int:
    from rnnbench.inference import detokenize, lm_vocab, sample_text, score_text
    from rnnbench.inference.evaluate import data_section

    vocab = lm_vocab(loaded, data_section(args.data) if args.data else None)
    level = str(loaded.task_kwargs.get("level", "word"))
    if args.score is not None:
        s = score_text(loaded, vocab, args.score)
        unit = "word" if level == "word" else "character"
        extra = f", {s['bpc']:.4f} bits per character" if "bpc" in s else ""
        print(f"{int(s['tokens'])} {unit}s: nll {s['nll']:.4f} nats per {unit}, perplexity "
              f"{s['ppl']:.4f}{extra}")
        return 0
    length = 100 if args.length is None else args.length
    tokens = sample_text(loaded, vocab, length=length, prime=args.prime,
                         temperature=args.temperature, seed=args.seed)
    if args.raw:
        print(" ".join(tokens))
    else:
        sep = " " if level == "word" and args.prime and not args.prime.endswith(" ") else ""
        print(args.prime + sep + detokenize(tokens, level))
    return 0


def _music(args: argparse.Namespace, loaded: Any) -> int:
    from rnnbench.inference import midi_available, sample_piano_roll, save_midi
    from rnnbench.inference import save_piano_roll_png as save_png

    png = Path(args.out)
    if png.suffix.lower() != ".png":
        png = png.with_name(png.name + ".png")
    length = 64 if args.length is None else args.length
    roll = sample_piano_roll(loaded, length=length, temperature=args.temperature,
                             seed=args.seed)
    try:
        save_png(roll, png, title=f"{loaded.module.hparams.cell}, temperature "
                 f"{args.temperature:g}, seed {args.seed}")
        print(f"piano roll ({roll.shape[0]} frames, {int(roll.sum())} notes on): {png}")
        if midi_available():
            mid = save_midi(roll, png.with_suffix(".mid"))
            print(f"MIDI (one frame per beat, 120 bpm): {mid}")
        else:
            print("no MIDI file: pip install 'rnnbench[midi]' to write one", file=sys.stderr)
    except OSError as err:
        from rnnbench.cli.base import CLIError

        raise CLIError(f"cannot write {err.filename or png} ({err.strerror}); pick another "
                       "--out") from None
    return 0
