"""Rich progress bars for passes: one per mailbox and one overall (messages, bytes, rate, ETA)."""

from __future__ import annotations

import threading

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, Progress,
                           TaskID, TextColumn, TimeRemainingColumn, TransferSpeedColumn)

from mxshift.engine.pass_result import PassResult


class RichProgress:
    """The engine's Progress protocol drawn with Rich; safe to call from worker threads."""

    def __init__(self, console: Console) -> None:
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                            TextColumn("{task.fields[done]}/{task.fields[todo]} msgs"),
                            DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                            console=console, transient=False)
        self.tasks: dict[str, TaskID] = {}
        self.overall = self.bar.add_task("[bold]all mailboxes", total=0, done=0, todo=0)
        self.lock = threading.Lock()

    def __enter__(self) -> "RichProgress":
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def start(self, mailbox: str, messages: int, size: int) -> None:
        with self.lock:
            self.tasks[mailbox] = self.bar.add_task(mailbox, total=size or None, done=0,
                                                    todo=messages)
            overall = self.bar.tasks[self.overall]
            self.bar.update(self.overall, total=(overall.total or 0) + size,
                            todo=overall.fields["todo"] + messages)

    def advance(self, mailbox: str, messages: int, size: int) -> None:
        with self.lock:
            for task in (self.tasks.get(mailbox), self.overall):
                if task is not None:
                    t = self.bar.tasks[task]
                    self.bar.update(task, advance=size, done=t.fields["done"] + messages)

    def finish(self, mailbox: str, result: PassResult) -> None:
        with self.lock:
            task = self.tasks.get(mailbox)
            text = f"{mailbox} [{'green' if result.status == 'ok' else 'red'}]{result.status}"
            if task is None:
                self.tasks[mailbox] = self.bar.add_task(text, total=1, completed=1, done=0,
                                                        todo=0)
            else:
                t = self.bar.tasks[task]
                self.bar.update(task, description=text, total=t.total or 1,
                                completed=t.total or 1)
