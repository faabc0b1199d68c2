"""Which attack kinds persistence detects on the synthetic plant, by TaPR's detection rule.

usage: python experiments/hai_persistence_kinds.py [--plants 0,1,2]

Scores persistence (``|x_t - x_{t-1}|`` averaged over the normalised sensors, moving average
of 10, as the anomaly task scores it) on the plants of ``experiments/hai_comparison.py``
(24,000 steps, window 40), picks the threshold that maximises TaPR F1 on validation, and
prints, per attack kind, how many test attacks have at least half their steps flagged
(TaPR's detection rule with theta 0.5).
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from rnnbench.data.catalog import build_data
    from rnnbench.data.datasets.plant import make_plant
    from rnnbench.tasks.anomaly import attack_ranges, moving_average
    from rnnbench.tasks.tapr import tapr_threshold

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plants", default="0,1,2")
    args = parser.parse_args(argv)
    n_steps, window = 24000, 40
    shares: dict[str, list[float]] = {}
    for plant in (int(p) for p in args.plants.split(",")):
        opts = {"dataset": "hai_plant", "n_steps": n_steps, "window": window,
                "process_seed": plant}
        dm = build_data(opts, seed=1).datamodule
        kinds = {a["start"]: a["kind"] for a in make_plant(n_steps, 24, plant).attrs["attacks"]}
        scored = {}
        for split, ds in (("val", dm.val), ("test", dm.test)):
            d = ds.data.double()  # (N, D)
            err = (d[ds.target_rows] - d[ds.target_rows - 1]).abs().mean(1).numpy()  # (n,)
            scored[split] = (moving_average(err, 10), ds.labels, ds.target_rows)
        threshold, _ = tapr_threshold(*scored["val"][:2], delta=10)
        scores, labels, rows = scored["test"]
        first = n_steps // 2 + (n_steps - n_steps // 2) // 2  # test frame's first row
        for a, b in attack_ranges(labels):
            kind = kinds[int(rows[a]) + first]
            shares.setdefault(kind, []).append(float((scores[a:b] > threshold).mean()))
    for kind, v in shares.items():
        print(f"{kind}: {sum(s >= 0.5 for s in v)} of {len(v)} detected, "
              f"mean share flagged {np.mean(v):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
