"""Zero-shot evaluation: benchmark tasks (`tasks.py`, the `benchmarks/` package), the runner and `chatbridge eval`."""

from .registry import TASKS, get_task, register_task
from .runner import evaluate, format_table, model_revision, score
from .tasks import Sample, Task

__all__ = [
    "TASKS", "Sample", "Task", "evaluate", "format_table", "get_task", "model_revision", "register_task", "score"
]  # fmt: skip
