"""The benchmarks `chatbridge eval` knows: the built-in ones, named here module by module, and any a user adds with
`register_task`."""

from .benchmarks import audio, audio_video, image, miniature, video
from .tasks import Task

TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add a benchmark (a `Task` whose name is not taken yet)."""
    if task.name in TASKS:
        raise ValueError(f"evaluation task {task.name!r} is registered already")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown evaluation task {name!r}; available: {', '.join(sorted(TASKS))}")
    return TASKS[name]


for _module in (miniature, image, video, audio, audio_video):
    for _task in _module.TASKS:
        register_task(_task)

__all__ = ["TASKS", "get_task", "register_task"]
