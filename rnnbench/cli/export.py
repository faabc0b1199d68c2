"""``rnnbench export``: a trained model as an ONNX or ``torch.export`` file, checked."""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = """\
Export a trained model as (inputs, *state) -> (outputs, *next_state) over fixed shapes:
--batch-size rows of --steps steps (default 1 step: a step function for next-step models;
give --steps for models that read whole sequences). The file is run on fresh inputs and its
outputs compared with the model's; it is kept only if they agree within 1e-5. ONNX needs
the onnx extra: pip install 'rnnbench[onnx]'.
"""


def add_parser(sub: Any) -> None:
    from rnnbench.cli._use import add_run_arguments

    p = sub.add_parser("export", help="export a trained model (ONNX, torch.export), checked",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--format", default="torch-export", choices=("onnx", "torch-export"),
                   help="onnx (runs in onnxruntime) or torch-export (a .pt2 program that "
                   "torch.export.load reads); default torch-export")
    p.add_argument("--out", metavar="PATH",
                   help="file to write (default: RUN/export/model.onnx or model.pt2)")
    p.add_argument("--batch-size", type=int, default=1, help="rows of the fixed input")
    p.add_argument("--steps", type=int, default=None, help="time steps of the fixed input")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnbench.cli._use import load, user_errors
    from rnnbench.inference import ExportMismatchError, export_model

    loaded = load(args)
    try:
        with user_errors():
            res = export_model(loaded, args.format, args.out, batch_size=args.batch_size,
                               steps=args.steps)
    except ExportMismatchError as err:
        print(f"rnnbench export: failed check: {err}", file=sys.stderr)
        return 1
    shapes = ", ".join(f"{n} {tuple(s)}" for n, s in zip(res.input_names, res.input_shapes))
    print(f"{res.format}: {res.path}")
    print(f"inputs: {shapes}; outputs: {', '.join(res.output_names)}")
    print(f"checked on fresh inputs: largest difference to the model's outputs "
          f"{res.max_abs_diff:.2g} (tolerance {res.atol:g})")
    return 0
