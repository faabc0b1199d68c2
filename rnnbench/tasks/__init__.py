"""Tasks: input encoders, heads, losses and metrics for each kind of problem."""

from rnnbench.tasks.base import Task, last_valid
from rnnbench.tasks.classification import ClassificationTask, CopyTask
from rnnbench.tasks.language_model import LanguageModelTask
from rnnbench.tasks.music import MusicTask
from rnnbench.tasks.regression import AnomalyTask, RegressionTask

TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (
        LanguageModelTask,
        MusicTask,
        RegressionTask,
        AnomalyTask,
        ClassificationTask,
        CopyTask,
    )
}


def build_task(name: str, **kwargs) -> Task:
    """Instantiates the task registered under ``name`` (see ``TASKS``)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name](**kwargs)


__all__ = [
    "TASKS",
    "AnomalyTask",
    "ClassificationTask",
    "CopyTask",
    "LanguageModelTask",
    "MusicTask",
    "RegressionTask",
    "Task",
    "build_task",
    "last_valid",
]
