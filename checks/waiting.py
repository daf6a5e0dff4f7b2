"""Never a silent terminal: a wait that takes long says what it is, then how long it has run."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Callable, Iterator


class Waiting:
    """Keeps the terminal from going silent: a wait that passes `after_s` says what it is, then
    prints the elapsed time every `every_s` until it ends. Short waits print nothing."""

    def __init__(
        self,
        after_s: float = 5.0,
        every_s: float = 12.0,
        speak: Callable[[str], None] | None = None,
    ):
        self.after_s, self.every_s = after_s, every_s
        self.speak = speak or say
        self.busy = False  # one wait speaks at a time: the outermost
        self.first_note: str | None = None

    @contextlib.contextmanager
    def noting(self, note: str) -> Iterator[None]:
        """While the block runs, say `note` too, once, if a wait gets long: a notice that only a
        slow wait makes true ("first MAX run on this machine"). Forgotten when the block ends."""
        previous, self.first_note = self.first_note, note
        try:
            yield
        finally:
            self.first_note = previous

    @contextlib.contextmanager
    def announce(self, text: str) -> Iterator[None]:
        if self.busy:
            yield
            return
        self.busy, done, start = True, threading.Event(), time.monotonic()
        spoke = threading.Event()

        def beat() -> None:
            if done.wait(self.after_s):
                return
            if self.first_note:
                self.speak(f"  {self.first_note}")
                self.first_note = None
            self.speak(f"  … {text}")
            spoke.set()
            while not done.wait(self.every_s):
                self.speak(f"  … still working ({time.monotonic() - start:.0f} s)")

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            self.busy = False
            if spoke.is_set():
                self.speak(f"  … done ({time.monotonic() - start:.0f} s)")


def say(line: str) -> None:
    """A progress line straight to the terminal, even while a report is being captured."""
    print(line, file=sys.__stdout__, flush=True)


waiting = Waiting()
