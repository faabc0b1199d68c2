"""A study worker: claims WAITING trials one at a time, trains them, records every outcome."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from rnnbench.studies.ledger import (
    ERROR,
    HOST,
    INTERRUPTED,
    LOST,
    NO_BEST,
    NONFINITE,
    Heartbeat,
    StudyRun,
    proc_start,
    retryable,
    stored_spec,
)
from rnnbench.studies.outcome import TrialOutcome, score_trial
from rnnbench.studies.population import declared_population, population_size, run_population
from rnnbench.studies.retry import Patience, patience_of
from rnnbench.studies.samplers import make_sampler
from rnnbench.studies.spec import StudySpec, Variant
from rnnbench.studies.storage import error_line, is_transient, open_storage, parse_storage_url
from rnnbench.studies.trials import FINAL, SEARCH, all_values, trial_config, trial_dir
from rnnbench.tracking import define_objective, finish, run_attrs, update_summary

DDP_ENV = "RNNBENCH_DDP_TRIAL"


@dataclass
class Worker:
    """Claims WAITING trials of one study and trains them, one at a time, until the budget
    of every variant is spent (then exits) or it is stopped.

    Args:
        run: The study (see :meth:`StudyRun.attach`).
        output_dir: Where trial logs go (``{output_dir}/trials/...``, ``.../final/...``).
        worker_id: A label for logs and trial attributes.
        log: Where progress lines go.
        poll_s: Seconds between looks at the storage while waiting for work.

    Attributes:
        gave_up: Why the loop stopped early, when the storage stayed unreachable (a database
            server down for longer than its patience); empty otherwise.
    """

    run: StudyRun
    output_dir: Path
    worker_id: str = ""
    log: Callable[[str], None] = print
    poll_s: float = 1.0
    stop: threading.Event = field(default_factory=threading.Event)
    outcomes: list[TrialOutcome] = field(default_factory=list)
    gave_up: str = ""
    _in_trial: bool = field(default=False, init=False, repr=False)
    _interrupting: bool = field(default=False, init=False, repr=False)
    _wandb: Any = field(default=None, init=False, repr=False)  # the running trial's logger
    _pruning: Any = field(default=None, init=False, repr=False)  # ... and its pruning callback
    _sizes: dict[str, int] = field(default_factory=dict, init=False, repr=False)  # populations

    # ------------------------------------------------------------------ signals
    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM: finish nothing new; interrupt the running trial, which is recorded
        FAIL (interrupted) and queued again, so the storage stays consistent."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop.set()
        if self._in_trial and not self._interrupting:
            self._interrupting = True
            raise KeyboardInterrupt

    def watch_parent(self, parent_pid: int) -> None:
        """Stops (interrupting the current trial) when the launching process goes away."""

        def loop() -> None:
            while not self.stop.wait(2.0):
                if os.getppid() != parent_pid:
                    self.log("launcher exited: stopping")
                    os.kill(os.getpid(), signal.SIGINT)
                    return

        threading.Thread(target=loop, daemon=True, name="parent-watch").start()

    # ------------------------------------------------------------------ loop
    def loop(self, max_trials: int | None = None) -> list[TrialOutcome]:
        """Runs trials until the study is done, ``max_trials`` ran, or :attr:`stop` is set.

        A storage that cannot be reached (a database restarting) is waited for; once it has
        been unreachable for its patience the loop stops with :attr:`gave_up` set.
        """
        run = self.run
        last_sweep = 0.0
        patience = Patience(run.storage, patience_of(run.storage, run.spec.grace_period),
                            pause_s=self.poll_s)
        while not self.stop.is_set():
            try:
                if time.monotonic() - last_sweep > min(5.0, run.spec.heartbeat_interval):
                    for line in run.sweep():
                        self.log(f"lost trial failed and re-queued: {line}")
                    last_sweep = time.monotonic()
                claim = self.claim()
                if claim is not None:  # alone, or with more of its kind (a population)
                    self.outcomes.extend(self._run_population(claim))
                    patience.ok()
                    if max_trials and len(self.outcomes) >= max_trials:
                        break
                    continue
                if run.all_done():
                    break
                patience.ok()
            except Exception as err:
                if not is_transient(err):
                    raise
                if not patience.wait(err):
                    self.gave_up = run.url.redact(f"{patience.why(err)}; giving up")
                    self.log(self.gave_up)
                    break
                continue
            self.stop.wait(self.poll_s)
        return self.outcomes

    def claim(self) -> tuple[Variant, str, optuna.Study, FrozenTrial] | None:
        """Moves one WAITING trial to RUNNING (atomically; see the module docstring).

        Search trials first, least-advanced variant first; a variant's final re-runs only
        once its search is over.
        """
        run = self.run
        tallies = {v.name: run.tally(v, SEARCH) for v in run.spec.variants}
        order = sorted(run.spec.variants,
                       key=lambda v: tallies[v.name].done + tallies[v.name].running)
        for v in order:
            if tallies[v.name].waiting:
                got = self._claim_in(v, SEARCH)
                if got:
                    return got
        for v in run.spec.variants:
            t = tallies[v.name]
            if t.pending == 0 and t.done >= run.quota(SEARCH):
                got = self._claim_in(v, FINAL)
                if got:
                    return got
        return None

    def _claim_in(self, v: Variant, kind: str):
        run = self.run
        study = run.study(v, kind)
        for t in run.trials(v, kind, states=(TrialState.WAITING,)):
            tid = run.trial_id(study, t.number)
            try:
                if run.storage.set_trial_state_values(tid, TrialState.RUNNING):
                    return v, kind, study, run.storage.get_trial(tid)
            except UpdateFinishedTrialError:
                continue
        return None

    def _run_population(self, claim) -> list[TrialOutcome]:
        """Claims more trials of the claimed one's variant and kind, up to ``study.population``
        (``final_population``: final re-runs), and trains them together."""
        variant, kind, study, frozen = claim
        claims = [(study, frozen)]
        size = self.run.spec.final_population.get(variant.name, 1) if kind == FINAL else \
            self._sizes.get(variant.name)
        if size is None:  # auto measures a member once per variant
            size = self._sizes[variant.name] = population_size(self.run.spec, variant)
            if declared_population(self.run.spec, variant) == "auto":
                self.log(f"{variant.name}: study.population auto trains up to {size} at once")
        while len(claims) < size:
            more = self._claim_in(variant, kind)
            if more is None:
                break
            claims.append((more[2], more[3]))
        if len(claims) == 1:
            return [self.run_trial(*claim)]
        return run_population(self, variant, claims, kind)

    # ------------------------------------------------------------------ one trial
    def run_trial(self, variant: Variant, kind: str, study: optuna.Study,
                  frozen: FrozenTrial) -> TrialOutcome:
        """Trains one claimed trial and records its outcome in the storage."""
        run, spec, storage = self.run, self.run.spec, self.run.storage
        tid, number = run.trial_id(study, frozen.number), frozen.number
        for key, value in (("worker_host", HOST), ("worker_pid", os.getpid()),
                           ("worker_start", proc_start(os.getpid())),
                           ("worker_id", self.worker_id)):
            storage.set_trial_user_attr(tid, key, value)
        what = f"final seed {frozen.user_attrs.get('seed')}" if kind == FINAL else "trial"
        label = f"{variant.name} {what} #{number}"
        self.log(f"start {label}")
        with Heartbeat(run, tid):
            outcome = self._train(variant, kind, study, frozen, tid)
        self.log(f"{outcome.state.lower()} {label}" + (
            f": {spec.metric} = {outcome.value:.6g}" if outcome.value is not None else "")
            + (f" ({outcome.reason})" if outcome.reason else ""))
        return outcome

    def _finish(self, study: optuna.Study, tid: int, outcome: TrialOutcome,
                attrs: dict[str, Any]) -> bool:
        """Records ``outcome``; ``False`` when it could not be (the trial finished otherwise,
        or the storage stayed unreachable: then the trial is left RUNNING, its heartbeat
        stops, and a sweep declares it lost and queues it again)."""
        storage = self.run.storage
        try:
            for key, value in attrs.items():
                storage.set_trial_user_attr(tid, key, value)
            if outcome.state == "COMPLETE":
                study.tell(outcome.number, outcome.value)
            else:
                study.tell(outcome.number, state=TrialState[outcome.state])
        except UpdateFinishedTrialError:
            # Whatever the run reached, the trial is what the storage says (failed, lost).
            outcome.state, outcome.value = "FAIL", None
            outcome.reason = "another process declared this trial lost; result discarded"
            return False
        except Exception as err:
            if not is_transient(err):
                raise
            outcome.state, outcome.value = "FAIL", None
            outcome.reason = self.run.url.redact(
                f"outcome not recorded, the study storage is unreachable ({error_line(err)}); "
                "it will be declared lost and run again")
            return False
        return True

    def _train(self, variant: Variant, kind: str, study: optuna.Study,
               frozen: FrozenTrial, tid: int) -> TrialOutcome:
        """Runs one claimed trial to its outcome, which is recorded however training ends:
        complete, pruned, non-finite, an error, or interrupted (then queued again)."""
        from rnnbench.module import NonFiniteLossError
        from rnnbench.studies.pruning import NonFiniteMetricError

        spec = self.run.spec
        number = frozen.number
        out = TrialOutcome(variant.name, kind, number, "FAIL")
        seed = int(frozen.user_attrs.get("seed", spec.config.get("seed", 0) or 0))
        if kind == FINAL:
            refused = self._pin_best(variant, frozen, tid)
            if refused:
                out.reason = refused
                self._finish(study, tid, out, {"fail_kind": NO_BEST, "fail_reason": out.reason})
                return out
            study.sampler = optuna.samplers.RandomSampler(seed=seed)
        else:
            study.sampler = make_sampler(spec, variant, number)
        trial = optuna.Trial(study, tid)
        run_dir = trial_dir(self.output_dir, variant, kind, number, seed)
        attrs: dict[str, Any] = {}
        env_before = dict(os.environ)
        try:
            self._score(*self._fit(trial, tid, variant, kind, seed, run_dir), out, attrs)
        except optuna.TrialPruned as err:
            out.state, out.reason = "PRUNED", str(err)
            attrs["prune_reason"] = str(err)
        except (NonFiniteLossError, NonFiniteMetricError) as err:
            out.reason = str(err)
            attrs.update(fail_kind=NONFINITE, fail_reason=out.reason)
        except BaseException as err:  # noqa: BLE001 - every outcome is recorded
            self._on_error(err, out, attrs, run_dir)
        finally:
            if self._wandb is not None:
                attrs.update(run_attrs(self._wandb))
                update_summary(self._wandb, self._summary(out, kind))
                finish()
                self._wandb = None
            self._pruning = None
            _restore_env(env_before)
        if self._finish(study, tid, out, attrs) and \
                attrs.get("fail_kind") in (INTERRUPTED, LOST):
            # Not the trial's fault: this process failed it, so it queues the retry.
            try:
                failed = self.run.storage.get_trial(tid)
                if retryable(failed, self.run.spec.retries):
                    self.run.requeue(study, failed)
            except Exception:  # noqa: BLE001 - `study run` re-queues it on the next run
                pass
        return out

    def _summary(self, out: TrialOutcome, kind: str) -> dict[str, Any]:
        """What a trial's W&B summary holds besides the last logged metrics: its objective
        and value, the best epoch's value and number, its state and the epoch it was pruned
        at (Optuna's step)."""
        pruning = self._pruning
        return {
            "trial/state": out.state, "trial/number": out.number, "trial/kind": kind,
            "trial/objective": self.run.spec.metric, "trial/value": out.value,
            "trial/best_value": getattr(pruning, "best_value", None),
            "trial/best_epoch": getattr(pruning, "best_epoch", None),
            "trial/pruned_step": getattr(pruning, "pruned_at", None),
            "trial/reason": out.reason or None,
        }

    def _pin_best(self, variant: Variant, frozen: FrozenTrial, tid: int) -> str | None:
        """Gives a final re-run the parameters of its variant's best search trial (once);
        returns why it cannot when no search trial completed."""
        if frozen.params or "fixed_params" in frozen.system_attrs:
            return None  # pinned already (a retry, or a resumed study)
        counts = self.run.tally(variant, SEARCH)
        if counts.best is None:
            return (f"no search trial of {variant.name} completed ({counts.failed} failed, "
                    f"{counts.pruned} pruned): nothing to re-run")
        storage = self.run.storage
        storage.set_trial_system_attr(tid, "fixed_params", dict(counts.best.params))
        storage.set_trial_user_attr(tid, "source_trial", counts.best.number)
        return None

    def _fit(self, trial: optuna.Trial, tid: int, variant: Variant, kind: str, seed: int,
             run_dir: Path) -> tuple[Any, Any]:
        """Samples the trial's values and trains its config; returns ``(result, pruning)``."""
        from rnnbench.studies.pruning import PruningCallback
        from rnnbench.train import run as run_experiment

        run, spec, storage = self.run, self.run.spec, self.run.storage
        number = trial.number
        values = spec.space_for(variant).suggest(trial)
        cfg = trial_config(spec, variant, values, seed=seed, kind=kind)
        storage.set_trial_user_attr(tid, "run_dir", str(run_dir))
        pruning = PruningCallback(trial, spec.metric, direction=spec.direction or "minimize")
        self._pruning = pruning
        self._wandb = self._wandb_logger(cfg, variant, kind, number, seed, values)
        if self._wandb is not None:
            define_objective(self._wandb, spec.metric, spec.direction or "minimize")
        callbacks = [pruning, _TrialRecorder(storage, tid, self._wandb)]
        if _multi_device(cfg):  # ranks > 0 read the trial from here (see run_ddp_rank)
            os.environ[DDP_ENV] = json.dumps({
                "storage": run.url.text, "study": spec.name, "trial_id": tid,
                "variant": variant.name, "kind": kind, "seed": seed,
                "run_dir": str(run_dir)})
        self._in_trial = True
        try:
            if self.stop.is_set():  # stopped while the trial was being set up
                raise KeyboardInterrupt
            result = run_experiment(cfg, callbacks=callbacks,
                                    loggers=[self._wandb] if self._wandb else [],
                                    test=kind == FINAL, run_dir=run_dir)
        finally:
            self._in_trial = False
        return result, pruning

    def _score(self, result: Any, pruning: Any, out: TrialOutcome,
               attrs: dict[str, Any]) -> None:
        """The trial's value (its best epoch's metric) and the metrics kept with it."""
        metric = self.run.spec.metric
        value = pruning.best_value
        if value is None:
            value = result.metrics.get(metric)
        score_trial(metric, result, value, pruning.best_epoch, out, attrs)

    def _on_error(self, err: BaseException, out: TrialOutcome, attrs: dict[str, Any],
                  run_dir: Path) -> None:
        """Records why a trial raised: interrupted and lost trials are queued again."""
        if self.stop.is_set() or not isinstance(err, Exception):
            # Ctrl-C / SIGTERM / launcher gone (Lightning turns Ctrl-C into SystemExit):
            # not the trial's fault, so it is queued again without using a retry.
            self.stop.set()
            out.reason = "interrupted (Ctrl-C, SIGTERM or the launcher stopped)"
            attrs.update(fail_kind=INTERRUPTED, fail_reason=out.reason)
            return
        # An error may quote the storage URL (a driver's message): never its password.
        redact = self.run.url.redact
        if is_transient(err):
            # The storage stayed unreachable past its patience mid-trial (a metric report, the
            # pruner's read): not the trial's fault either, so it is lost, not an error.
            out.reason = redact(f"the study storage became unreachable during the trial "
                                f"({error_line(err)})")
            attrs.update(fail_kind=LOST, fail_reason=out.reason)
            return
        out.reason = redact(f"{type(err).__name__}: {err}".strip())
        attrs.update(fail_kind=ERROR, fail_reason=out.reason[:2000])
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "error.txt").write_text(redact(traceback.format_exc()))
        except OSError:
            pass

    def _wandb_logger(self, cfg, variant: Variant, kind: str, number: int, seed: int,
                      values: dict[str, Any]):
        from rnnbench.tracking import make_wandb_logger, wandb_settings

        if wandb_settings(cfg) is None:
            return None
        spec = self.run.spec
        config = {
            **values, "study": spec.name, "variant": variant.name, **variant.model(),
            "trial": number, "kind": kind, "seed": seed, "metric": spec.metric,
            "config": cfg,
        }
        name = f"{variant.name}#{number}" + (f"-seed{seed}" if kind == FINAL else "")
        for mode in (None, "offline"):
            logger = make_wandb_logger(cfg, job_type=variant.name, group=spec.name, name=name,
                                       tags=(kind,), config=config, mode=mode)
            try:
                logger.experiment  # noqa: B018 - start the run now, not inside fit
                return logger
            except Exception as err:  # noqa: BLE001 - W&B trouble must not fail a trial
                finish()
                self.log(f"W&B run could not start ({type(err).__name__}: {err}); "
                         + ("retrying offline" if mode is None else "training without W&B"))
        return None


def _multi_device(cfg: dict[str, Any]) -> bool:
    devices = cfg.get("trainer", {}).get("devices", 1)
    num_nodes = cfg.get("trainer", {}).get("num_nodes", 1)
    if isinstance(devices, (list, tuple)):
        return len(devices) > 1
    return (isinstance(devices, int) and devices > 1) or devices == -1 or (num_nodes or 1) > 1


def _restore_env(before: dict[str, str]) -> None:
    # Lightning's DDP launcher sets MASTER_ADDR, LOCAL_RANK, WORLD_SIZE... in this process; a
    # later trial would take them for an externally launched job and wait for ranks forever.
    for key in list(os.environ):
        if key not in before:
            del os.environ[key]
    for key, value in before.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001
        pass


class _TrialRecorder(L.Callback):
    """Writes the model's size to the trial (and the W&B config) when fitting starts."""

    def __init__(self, storage: Any, trial_id: int, wandb_logger: Any) -> None:
        self.storage, self.trial_id, self.wandb_logger = storage, trial_id, wandb_logger

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        size = {"num_parameters": int(pl_module.num_parameters()),
                "hidden_size": int(pl_module.hparams.hidden_size)}
        for key, value in size.items():
            self.storage.set_trial_user_attr(self.trial_id, key, value)
        if self.wandb_logger is not None:
            self.wandb_logger.experiment.config.update(size, allow_val_change=True)


def run_ddp_rank() -> int:
    """Entry of a DDP rank > 0 that Lightning started by re-running ``study worker``.

    Rank 0 recorded the trial's parameters before fitting; this rank reads them (read-only:
    only rank 0 writes to the storage) and runs the same config, following rank 0's pruning
    decisions.
    """
    from rnnbench.studies.pruning import PruningCallback
    from rnnbench.train import run as run_experiment

    info = json.loads(os.environ[DDP_ENV])
    parsed = parse_storage_url(info["storage"])
    storage = open_storage(parsed, create=False)
    spec = StudySpec.from_dict(stored_spec(storage, info["study"]) or {})
    variant = spec.variant(info["variant"])
    frozen = storage.get_trial(int(info["trial_id"]))
    params = {**frozen.system_attrs.get("fixed_params", {}), **frozen.params}
    cfg = trial_config(spec, variant, all_values(spec, variant, params), seed=info["seed"],
                       kind=info["kind"])
    try:
        run_experiment(cfg, callbacks=[PruningCallback(None, spec.metric,
                                                       direction=spec.direction or "minimize")],
                       test=info["kind"] == FINAL, run_dir=info["run_dir"])
    except optuna.TrialPruned:
        pass
    return 0


__all__ = ["DDP_ENV", "TrialOutcome", "Worker", "run_ddp_rank"]
