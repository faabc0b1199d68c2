"""Live progress of a study in the launching terminal (Rich), or plain lines in logs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from optuna.trial import TrialState

from rnnbench.studies.ledger import StudyRun, Tally
from rnnbench.studies.trials import FINAL, SEARCH


@dataclass
class VariantRow:
    name: str
    size: str
    search: Tally
    final: Tally
    final_mean: float | None


def _duration(s: float) -> str:
    s = int(max(0.0, s))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s" if m else f"{sec}s"


class StudyProgress:
    """Polls the storage and shows trials done / pruned / failed per variant, the best value
    so far, elapsed time and the remaining budget.

    In a terminal it is a Rich live table; otherwise (logs, CI) it prints one line per
    variant whenever that variant's counts change.

    Args:
        run: The study.
        workers: Worker processes started.
        sizes: ``{variant: {"hidden_size", "num_parameters"}}`` from the pre-flight check.
        console: A ``rich.console.Console`` (default: a new one on stdout).
        live: Force the live table on or off (default: on in a terminal).
    """

    def __init__(self, run: StudyRun, *, workers: int, sizes: dict[str, dict] | None = None,
                 console: Any = None, live: bool | None = None) -> None:
        from rich.console import Console

        self.run = run
        self.workers = workers
        self.sizes = sizes or {}
        self.console = console or Console()
        self.live_mode = self.console.is_terminal if live is None else live
        self.t0 = time.monotonic()
        self.alive = workers
        self._live = None
        self._last: dict[str, tuple] = {}
        self._durations: list[float] = []

    def __enter__(self) -> StudyProgress:
        if self.live_mode:
            from rich.live import Live

            self._live = Live(self.render(self.snapshot()), console=self.console,
                              refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            if exc[0] is None:  # (the storage may be what failed)
                self._live.update(self.render(self.snapshot()))
            self._live.__exit__(*exc)
            self._live = None

    def log(self, message: str) -> None:
        """A line above the table (or a plain line)."""
        self.console.print(f"[{_duration(time.monotonic() - self.t0):>8}] {message}",
                           highlight=False, markup=False)

    # ------------------------------------------------------------------ data
    def snapshot(self) -> list[VariantRow]:
        rows = []
        durations = []
        for v in self.run.spec.variants:
            trials = {k: self.run.trials(v, k) for k in (SEARCH, FINAL)}
            search = self.run.tally(v, SEARCH)
            final = self.run.tally(v, FINAL)
            for t in trials[SEARCH] + trials[FINAL]:
                if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) and \
                        t.datetime_start and t.datetime_complete:
                    durations.append((t.datetime_complete - t.datetime_start).total_seconds())
            values = [t.value for t in trials[FINAL]
                      if t.state == TrialState.COMPLETE and t.value is not None]
            size = self.sizes.get(v.name, {})
            if search.best is not None and "num_parameters" in search.best.user_attrs:
                size = {"hidden_size": search.best.user_attrs.get("hidden_size"),
                        "num_parameters": search.best.user_attrs["num_parameters"]}
            text = (f"{size['hidden_size']} / {size['num_parameters']:,}"
                    if size.get("num_parameters") else size.get("note", "-"))
            rows.append(VariantRow(v.name, text, search, final,
                                   sum(values) / len(values) if values else None))
        self._durations = durations
        return rows

    def remaining(self, rows: list[VariantRow]) -> tuple[int, int]:
        total = len(rows) * (self.run.quota(SEARCH) + self.run.quota(FINAL))
        done = sum(min(r.search.done, self.run.quota(SEARCH)) +
                   min(r.final.done, self.run.quota(FINAL)) for r in rows)
        return total - done, total

    # ------------------------------------------------------------------ views
    def render(self, rows: list[VariantRow]):
        from rich.table import Table

        spec = self.run.spec
        left, total = self.remaining(rows)
        elapsed = time.monotonic() - self.t0
        eta = ""
        if self._durations and left:
            mean = sum(self._durations) / len(self._durations)
            eta = f", about {_duration(mean * left / max(1, self.alive))} left"
        table = Table(
            title=f"study {spec.name} | {self.run.url.display} | {self.alive}/{self.workers} "
                  f"workers | elapsed {_duration(elapsed)} | {left} of {total} runs to go{eta}",
            title_justify="left")
        for col in ("variant", "hidden / params", "trials", "complete", "pruned", "failed",
                    "running", f"best {spec.metric}", "final runs", f"final {spec.metric}"):
            table.add_column(col, justify="left" if col in ("variant",) else "right")
        for r in rows:
            s, f = r.search, r.final
            table.add_row(
                r.name, r.size, f"{s.done}/{self.run.quota(SEARCH)}", str(s.complete),
                str(s.pruned), f"[red]{s.failed}[/red]" if s.failed else "0",
                str(s.running + f.running),
                f"{s.best.value:.4f}" if s.best is not None else "-",
                f"{f.done}/{self.run.quota(FINAL)}",
                f"{r.final_mean:.4f}" if r.final_mean is not None else "-")
        return table

    def update(self, alive: int | None = None) -> None:
        """Re-reads the storage and refreshes the view."""
        if alive is not None:
            self.alive = alive
        rows = self.snapshot()
        if self._live is not None:
            self._live.update(self.render(rows))
            return
        for r in rows:
            key = (r.search.done, r.search.running, r.final.done, r.final.running)
            if self._last.get(r.name) == key:
                continue
            self._last[r.name] = key
            s, f = r.search, r.final
            best = f"{s.best.value:.4f}" if s.best is not None else "-"
            self.log(f"{r.name}: trials {s.done}/{self.run.quota(SEARCH)} (complete "
                     f"{s.complete}, pruned {s.pruned}, failed {s.failed}, running "
                     f"{s.running}), best {self.run.spec.metric} {best}; final runs "
                     f"{f.done}/{self.run.quota(FINAL)}")


__all__ = ["StudyProgress"]
