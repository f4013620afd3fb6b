"""Zero-shot evaluation: benchmark tasks (`tasks.py`, the `benchmarks/` package), the runner and `chatbridge eval`."""

from . import benchmarks  # noqa: F401  (registers the built-in benchmarks)
from .runner import evaluate, format_table, model_revision, score
from .tasks import TASKS, Sample, Task, get_task, register_task

__all__ = [
    "TASKS", "Sample", "Task", "evaluate", "format_table", "get_task", "model_revision", "register_task", "score"
]  # fmt: skip
