"""The demo's page (`docs/demo.md`) quotes figures only as runs wrote them.

Its figures sit in sections between `<!-- begin NAME -->` and `<!-- end NAME -->`: `chatbridge demo --doc PAGE`
writes its run's report into `run`, `bench/demo_seeds.py --doc PAGE` its table over seeds into `seeds`. The rest of
the page (the steps, the findings) is prose kept by hand.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..inference.batch import InputError


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- begin {name} -->", f"<!-- end {name} -->"


def check_section(page: Path, name: str) -> None:
    """Raise unless `page` has exactly one `name` section: called before a run, so a long run never ends unwritten."""
    begin, end = _markers(name)
    text = Path(page).read_text() if Path(page).is_file() else None
    if text is None or text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise InputError(f"{page} must hold one `{begin}` line before one `{end}` line: the run writes between them.")


def replace_section(page: Path, name: str, body: str) -> None:
    """Put `body` between the `name` markers of `page`, keeping everything else."""
    check_section(page, name)
    begin, end = _markers(name)
    text = Path(page).read_text()
    head, rest = text.split(begin)
    tail = rest.split(end)[1]
    Path(page).write_text(f"{head}{begin}\n{body.strip()}\n{end}{tail}")


def report_section(run_dir: Path, page: Path) -> str:
    """A demo run's `report.md` as a section of `page` (headings a level down), its loss plot copied beside the page
    as `demo_loss.png`. The run folder's own paths (the publishable folder) are left out."""
    run_dir, page = Path(run_dir), Path(page)
    shutil.copyfile(run_dir / "loss.png", page.parent / "demo_loss.png")
    lines = []
    for line in (run_dir / "report.md").read_text().splitlines():
        if line.startswith("Publishable folder"):
            continue
        lines.append(("#" + line if line.startswith("#") else line).replace("](loss.png)", "](demo_loss.png)"))
    return "\n".join(lines)
