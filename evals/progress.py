"""The sweep's progress bar."""

from __future__ import annotations


class Progress:
    """Rows done, errors, cost so far and time left, on the terminal."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.enabled = enabled and total > 0
        if not self.enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        self.bar = Bar(
            TextColumn("[bold]rows"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("errors {task.fields[errors]}  ${task.fields[cost]:.4f}"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
        )
        self.task = self.bar.add_task("rows", total=total, errors=0, cost=0.0)
        self.bar.start()

    def advance(self, rows: int, errors: int, cost: float) -> None:
        if self.enabled:
            self.bar.update(self.task, advance=rows, errors=errors, cost=cost)

    def stop(self) -> None:
        if self.enabled:
            self.bar.stop()
