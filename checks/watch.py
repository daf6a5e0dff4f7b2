"""`python -m checks watch`: check a step each time its file is saved.

Each check runs as a child process (`python -m checks N`) in its own process group, so a newer
save stops an obsolete check at once (steps 4-8 compile for 45-55 s after an edit on 2 cores)
and Ctrl+C leaves nothing behind. The eager checks run first, on their own, so their verdict
shows in seconds; the full check (with the compiled graphs) follows when they pass. File events
come from watchdog; where they do not arrive (WSL's /mnt drives, network folders) it polls.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from checks import harness, options, runtime, tools

# File systems that deliver no inotify events for changes made from elsewhere: WSL's Windows
# drives (9p, drvfs), network folders, FUSE mounts.
NO_EVENTS = {"9p", "v9fs", "drvfs", "nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "fuse"}
POLL_SECONDS = 1.0
SETTLE_SECONDS = 0.2  # an editor's save is several events: wait for the last
STOP_SECONDS = 3.0  # after SIGTERM, a check's process group gets this long before SIGKILL


def needs_polling(folder: Path) -> bool:
    """Whether `folder` is on a file system that sends no change events (from /proc/mounts)."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return False
    path = str(folder.resolve())
    best = ("", "")
    for fields in mounts:
        if len(fields) >= 3:
            point = fields[1].replace("\\040", " ")
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best[0]):
                best = (point, fields[2])
    return best[1] in NO_EVENTS


def step_of_file(folder: Path, path: Path) -> int | None:
    """The step a saved file belongs to (its module or another file of it, such as a kernel)."""
    try:
        name = path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return None
    return next((step for step in tools.ALL_STEPS if name in tools.step_files(step)), None)


def check_command(step: int, folder: Path, eager_only: bool, extra: list[str]) -> list[str]:
    """The command of one check, as a learner would type it."""
    command = [sys.executable, "-m", "checks", harness.step_argument(step), "--dir", str(folder)]
    return command + (["--eager-only"] if eager_only else []) + extra


@dataclass
class Check:
    """One running check: its child process and the lines it has printed so far."""

    step: int
    eager_only: bool
    process: subprocess.Popen
    started: float = field(default_factory=time.monotonic)
    lines: list[str] = field(default_factory=list)

    def stop(self) -> None:
        """End the check and everything it started (MAX's compile workers included)."""
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


@dataclass
class Report:
    """What a finished check said, as the status block shows it."""

    passed: bool
    first_failure: list[str]
    summary: str  # the report's last line: passes / not done yet, and what next


def read_report(lines: list[str], code: int) -> Report:
    failure: list[str] = []
    for index, line in enumerate(lines):
        if line.startswith("  FAIL  "):
            failure = [line.strip()]
            for more in lines[index + 1 :]:
                if not more.startswith("        "):
                    break
                failure.append("  " + more.strip())
            break
    summary = next((line for line in reversed(lines) if line.strip()), "(no output)")
    earlier = [line for line in lines if "does not pass its own check yet" in line]
    if earlier:  # "Step 4 runs on your step 1, which does not pass ...: fix step 1 first"
        summary = f"{earlier[0].strip()}\n{summary.strip()}"
    if code not in (0, 1) and not failure:  # the check itself crashed: show its last words
        failure = [line.rstrip() for line in lines[-8:]]
    return Report(code == 0, failure, summary.strip())


class Watcher:
    """The watch loop: file events in, checks out, one status block at a time."""

    def __init__(
        self,
        folder: Path,
        *,
        poll: bool | None = None,
        extra: list[str] | None = None,
        command: Callable[[int, Path, bool, list[str]], list[str]] = check_command,
        out: Callable[[str], None] | None = None,
    ):
        self.folder = folder
        self.poll = needs_polling(folder) if poll is None else poll
        self.extra = extra or []
        self.command = command
        self.out = out or self._print
        self.tty = sys.stdout.isatty()
        self.saves: queue.Queue[Path] = queue.Queue()
        self.output: queue.Queue[tuple[Check, str | None]] = queue.Queue()
        self.check: Check | None = None
        self.step = self._first_step_to_do()
        self.note = ""  # a line above the block: what just passed
        self.eager: Report | None = None  # the eager verdict of the running full check
        self.last_block = ""

    # --- where to start ------------------------------------------------------------------------

    def _first_step_to_do(self) -> int:
        from checks import verdicts

        for step in tools.ALL_STEPS:
            verdict = None if tools.untouched(self.folder, step) else verdicts.recorded(step)
            if verdict is None or not verdict.passed:
                return step
        return tools.ALL_STEPS[-1]

    # --- checks --------------------------------------------------------------------------------

    def start(self, step: int, eager_only: bool) -> None:
        self.stop()
        self.step = step
        process = subprocess.Popen(
            self.command(step, self.folder, eager_only, self.extra),
            cwd=harness.ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=harness.child_env(PYTHONUNBUFFERED="1"),
            start_new_session=True,  # its own process group: killpg stops it and its children
        )
        check = Check(step, eager_only, process)
        self.check = check
        if eager_only:
            self.eager = None
        threading.Thread(target=self._read, args=(check,), daemon=True).start()
        self.show()

    def _read(self, check: Check) -> None:
        assert check.process.stdout is not None
        for line in check.process.stdout:
            self.output.put((check, line.rstrip("\n")))
        self.output.put((check, None))

    def stop(self) -> None:
        if self.check is not None:
            self.check.stop()
            self.check = None

    def finished(self, check: Check) -> None:
        code = check.process.wait()
        report = read_report(check.lines, code)
        self.check = None
        if check.eager_only:
            self.eager = report
            full = check.step in harness.COMPILING_STEPS and not options.current().eager_only
            if report.passed and full:
                self.start(check.step, eager_only=False)  # now the compiled checks
                return
        if report.passed:
            self.note = report.summary
            later = [s for s in tools.ALL_STEPS if s > check.step]
            if later:
                self.eager = None
                self.start(later[0], eager_only=True)
                return
            self.show(done=report)
            return
        self.show(done=report)

    # --- the status block ----------------------------------------------------------------------

    def block(self, done: Report | None = None) -> str:
        step = self.step
        name = harness.step_name(step)
        shown = os.path.relpath(self.folder / tools.step_files(step)[0])
        how = f"polling every {POLL_SECONDS:g} s" if self.poll else "file events"
        lines = [f"Watching {os.path.relpath(self.folder)}/ ({how}). Ctrl+C stops."]
        if self.note:
            lines.append(self.note)
        lines.append("")
        check = self.check
        if check is not None:
            state = (
                "checking (eager checks)"
                if check.eager_only
                else "eager checks pass; checking the compiled graphs"
            )
            elapsed = time.monotonic() - check.started
            lines.append(f"{name}: {harness.STEP_TITLES[step]}  [{shown}]")
            lines.append(f"  {state} ... {elapsed:.0f} s")
            beats = [line.strip() for line in check.lines if line.strip().startswith("…")]
            if beats:
                lines.append(f"  {beats[-1]}")
        elif done is not None:
            state = "passes" if done.passed else "not done yet"
            lines.append(f"{name}: {harness.STEP_TITLES[step]}  [{shown}]: {state}")
            lines += [f"  {line}" for line in done.first_failure]
            lines.append("")
            lines.append(done.summary)
            if not done.passed:
                lines.append(
                    f"Next: fix the first failure in {shown} and save; the check runs again "
                    f"(hints: {harness.command('hint', harness.step_argument(step))})."
                )
        return "\n".join(lines)

    def show(self, done: Report | None = None) -> None:
        text = self.block(done)
        if text == self.last_block:
            return
        self.last_block = text
        self.out(text)

    def _print(self, text: str) -> None:
        if self.tty:
            sys.stdout.write("\033[H\033[2J" + text + "\n")  # one block at a time, redrawn
        else:
            sys.stdout.write(text + "\n" + "-" * 40 + "\n")
        sys.stdout.flush()

    # --- the loop ------------------------------------------------------------------------------

    def observe(self):
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        saves = self.saves

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event) -> None:
                if event.event_type in ("opened", "closed_no_write") or event.is_directory:
                    return
                for path in (event.src_path, getattr(event, "dest_path", "")):
                    if path:
                        saves.put(Path(os.fsdecode(path)))

        observer = PollingObserver(timeout=POLL_SECONDS) if self.poll else Observer()
        observer.schedule(Handler(), str(self.folder), recursive=True)
        observer.start()
        return observer

    def run(self, stop: threading.Event | None = None) -> int:
        stop = stop or threading.Event()
        observer = self.observe()
        try:
            self.start(self.step, eager_only=True)
            last_draw = time.monotonic()
            while not stop.is_set():
                self._drain_output()
                step = self._saved_step()
                if step is not None:
                    self.note = ""
                    self.start(step, eager_only=True)
                if self.check is not None and time.monotonic() - last_draw >= 1.0 and self.tty:
                    self.show()  # the running check's clock
                    last_draw = time.monotonic()
        except KeyboardInterrupt:
            self.stop()
            self.out("Stopped watching.")
            return 130
        finally:
            self.stop()
            observer.stop()
            observer.join(5)
        return 0

    def _drain_output(self) -> None:
        try:
            check, line = self.output.get(timeout=0.1)
        except queue.Empty:
            return
        while True:
            if check is self.check:
                if line is None:
                    self.finished(check)
                else:
                    check.lines.append(line)
                    if line.strip().startswith("…"):
                        self.show()  # the checks' heartbeat
            try:
                check, line = self.output.get_nowait()
            except queue.Empty:
                return

    def _saved_step(self) -> int | None:
        """The step of the latest saved step file, once the save has settled; else None."""
        steps: list[int] = []
        try:
            path = self.saves.get_nowait()
        except queue.Empty:
            return None
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            if not re.search(r"(__pycache__|\.bak-|~$|\.sw.$)", str(path)):
                step = step_of_file(self.folder, path)
                if step is not None:
                    steps.append(step)
            try:
                path = self.saves.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
        return steps[-1] if steps else None


def watch(folder: Path, poll: bool | None, extra: list[str]) -> int:
    """Watch until Ctrl+C, SIGTERM or SIGHUP (the terminal closed): each stops the running check.
    Started in the background with Ctrl+C ignored (`... &`), it keeps ignoring it."""
    runtime.install_stop_handlers()
    return Watcher(folder, poll=poll, extra=extra).run()
