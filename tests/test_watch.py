"""Watch mode: a save checks its step, a newer save stops an obsolete check, Ctrl+C leaves no
process behind, and polling works where file events do not arrive.

The fast tests run the watcher in this process with a stand-in for the check (a small script
that answers as a check does, or takes its time as a compile does): the watcher's code path is the
same, only the child's command differs. The last test runs `python -m checks watch` itself, on a
learner copy, with the real step 1 check (no MAX compile: step 1 is pure Python).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from checks import harness, verdicts, watch
from tests.conftest import ROOT, start_checks

STAND_IN = """
import sys, time
from pathlib import Path
step, folder = sys.argv[1], Path(sys.argv[3])
eager = "--eager-only" in sys.argv
name = {"1": "step_01.py", "4": "step_04.py"}.get(step, "step_%02d.py" % int(step))
text = (folder / name).read_text()
print(f"Step {step}: stand-in  [{name}]", flush=True)
if "SLOW" in text and not (eager and "SLOW_COMPILED" in text):
    with open(sys.argv[4], "a") as pgids:  # one line per slow check started
        pgids.write(f"{__import__('os').getpgid(0)}\\n")
    while True:
        print("  … still working", flush=True)
        time.sleep(0.3)
if "WRONG" in text or "PASS_ME" not in text:  # an untouched skeleton fails, as it does
    found = "WRONG" if "WRONG" in text else "no PASS_ME"
    print(f"  FAIL  stand-in check\\n        the stand-in found {found}", flush=True)
    print(f"\\nStep {step} is not done yet: 1 of 1 checks failed (0.0 s).", flush=True)
    sys.exit(1)
print("  PASS  stand-in check", flush=True)
print(f"\\nStep {step} passes: all 1 checks match HuggingFace (0.0 s). Next: step {int(step) + 1}.")
"""


@pytest.fixture
def learner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "steps"
    shutil.copytree(ROOT / "steps", folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(verdicts, "FOLDER", tmp_path / "verdicts")
    previous = harness.steps_dir()
    harness.use_steps_dir(folder)
    yield folder
    harness.use_steps_dir(previous)


# How long a stand-in check may take to show a line before the test calls it hung: a deadline, not
# a speed (returned the moment the line shows); a shared 2-core machine under load took over 10 s.
PATIENCE_S = 30.0


class Running:
    """A Watcher on a thread, with a stand-in check; its status blocks, as shown."""

    def __init__(self, folder: Path, tmp: Path, poll: bool):
        script = tmp / "stand_in.py"
        script.write_text(STAND_IN)
        self.pgid_file = tmp / "pgid"
        self.blocks: list[str] = []
        self.watcher = watch.Watcher(
            folder,
            poll=poll,
            command=lambda step, folder, eager, extra: [
                sys.executable,
                str(script),
                harness.step_argument(step),
                "--dir",
                str(folder),
                str(self.pgid_file),
                *(["--eager-only"] if eager else []),
            ],
            out=self.blocks.append,
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.watcher.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()

    def wait_for(self, text: str, after: int = 0, seconds: float = PATIENCE_S) -> float:
        """Seconds until a block shown after the first `after` blocks holds `text`."""
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            if any(text in block for block in self.blocks[after:]):
                return time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not shown within {seconds} s:\n" + "\n".join(self.blocks))

    def slow_pgid(self, number: int = 1, seconds: float = 20.0) -> int:
        """The process group of the `number`th slow check, once it has started."""
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            lines = self.pgid_file.read_text().splitlines() if self.pgid_file.exists() else []
            if len(lines) >= number:
                return int(lines[number - 1])
            time.sleep(0.05)
        raise AssertionError(f"slow stand-in check {number} never started:\n" + self.blocks[-1])


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def save(path: Path, text: str) -> None:
    time.sleep(0.05)  # a distinct modification time for the polling observer
    path.write_text(text)


@pytest.mark.fast
@pytest.mark.parametrize("poll", [False, True], ids=["file events", "polling"])
def test_a_save_checks_its_step_fail_then_pass(learner, tmp_path, poll, monkeypatch):
    monkeypatch.setattr(watch, "POLL_SECONDS", 0.2)  # the same observer, looking more often
    step_01 = learner / "step_01.py"
    with Running(learner, tmp_path, poll) as run:
        run.wait_for("the stand-in found no PASS_ME")  # the skeleton, checked at the start
        shown = len(run.blocks)
        save(step_01, step_01.read_text() + "\n# WRONG\n")
        run.wait_for("the stand-in found WRONG", after=shown)
        assert "not done yet" in run.blocks[-1] and "Next: fix the first failure" in run.blocks[-1]
        shown = len(run.blocks)
        save(step_01, step_01.read_text().replace("# WRONG", "# PASS_ME"))
        run.wait_for("Step 1 passes", after=shown)
        # It moves on to the next step.
        run.wait_for("Step 2: the feed-forward network", after=shown)


@pytest.mark.fast
def test_a_save_during_a_running_check_stops_it_and_starts_again(learner, tmp_path):
    step_04 = learner / "step_04.py"
    with Running(learner, tmp_path, poll=False) as run:
        # Saved only once the first check is shown: the file events' watch, set up on a thread of
        # watchdog's own, missed a save made at once (twice in eight fast-tier runs on the loaded machine).
        run.wait_for("the stand-in found no PASS_ME")
        save(step_04, step_04.read_text() + "\n# SLOW\n")
        run.wait_for("still working")
        started = len(run.pgid_file.read_text().splitlines())  # 1, or 2 if a save came late
        first = run.slow_pgid(started)
        save(step_04, step_04.read_text() + "\n# SLOW again\n")
        second = run.slow_pgid(started + 1)
        assert second != first
        deadline = time.monotonic() + 5
        while group_alive(first) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not group_alive(first), "the obsolete check is still running"
    assert not group_alive(second), "stopping the watcher left the check running"


@pytest.mark.fast
def test_the_eager_verdict_shows_before_the_compiled_checks_end(learner, tmp_path):
    step_04 = learner / "step_04.py"
    with Running(learner, tmp_path, poll=False) as run:
        # Saved only once the first check is shown: the file events' watch, set up on a thread of
        # watchdog's own, missed a save made at once (twice in eight fast-tier runs on the loaded machine).
        run.wait_for("the stand-in found no PASS_ME")
        save(step_04, step_04.read_text() + "\n# SLOW_COMPILED PASS_ME\n")
        run.wait_for("eager checks pass; checking the compiled graphs")
        pgid = run.slow_pgid()
    assert not group_alive(pgid)


def watch_until_signalled(learner, tmp_path, monkeypatch, *signals: int) -> tuple[int, Running]:
    """`watch.watch` on a slow stand-in check, sent `signals` in turn once the check runs (0.5 s
    apart): its exit status once it stops, and the run; the check's group is gone by then."""
    step_01 = learner / "step_01.py"
    step_01.write_text(step_01.read_text() + "\n# SLOW\n")
    run = Running(learner, tmp_path, poll=False)
    monkeypatch.setattr(watch, "Watcher", lambda *args, **kwargs: run.watcher)
    pgid: list[int] = []

    def send() -> None:
        pgid.append(run.slow_pgid())
        for signum in signals:
            os.kill(os.getpid(), signum)
            time.sleep(0.5)

    threading.Thread(target=send, daemon=True).start()
    code = watch.watch(learner, poll=False, extra=[])
    assert pgid and not group_alive(pgid[0])
    return code, run


@pytest.mark.fast
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_sigterm_or_sighup_ends_watching_with_no_process_left(
    learner, tmp_path, monkeypatch, terminal_signals, signum
):
    code, run = watch_until_signalled(learner, tmp_path, monkeypatch, signum)
    assert code == 130
    assert "Stopped watching." in run.blocks[-1]


@pytest.mark.fast
def test_started_in_the_background_watch_ignores_ctrl_c_and_sigterm_ends_it(
    learner, tmp_path, monkeypatch, terminal_signals
):
    """A shell starts a background job (`pixi run watch &`) with Ctrl+C ignored: watch keeps it
    so (the Unix convention), and SIGTERM still ends it and its check."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    code, run = watch_until_signalled(learner, tmp_path, monkeypatch, signal.SIGINT, signal.SIGTERM)
    assert code == 130
    assert "Stopped watching." in run.blocks[-1]
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


@pytest.mark.fast
def test_polling_is_chosen_on_file_systems_without_events(tmp_path, monkeypatch):
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/sdc / ext4 rw 0 0\nC:\\134 /mnt/c 9p rw 0 0\nserver:/x /net/share nfs4 rw 0 0\n"
    )
    real = Path

    class FakePath(type(Path())):
        def read_text(self, *args, **kwargs):
            if str(self) == "/proc/mounts":
                return real(mounts).read_text()
            return super().read_text(*args, **kwargs)

    monkeypatch.setattr(watch, "Path", FakePath)
    assert watch.needs_polling(real("/mnt/c/Users/me/course/steps"))
    assert watch.needs_polling(real("/net/share/steps"))
    assert not watch.needs_polling(real("/home/me/course/steps"))
    assert not watch.needs_polling(real("/mntx/steps"))


def learner_processes(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in command and str(os.getpid()) != entry.name:
                found.append(f"{entry.name}: {command}")
    return found


def test_watch_on_a_learner_copy_with_the_real_step_1_check(tmp_path):
    """`python -m checks watch`: a wrong save fails, a right one passes, each within 10 s;
    Ctrl+C ends it and leaves no process."""
    folder = tmp_path / "mine"
    shutil.copytree(ROOT / "steps", folder, ignore=shutil.ignore_patterns("__pycache__"))
    process = start_checks("watch", "--dir", str(folder), PYTHONUNBUFFERED="1")
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(process.stdout), daemon=True).start()

    def wait_for(text: str, after: int, seconds: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            if text in "".join(output[after:]):
                return time.monotonic() - start
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not shown within {seconds} s:\n" + "".join(output))

    try:
        wait_for("Step 1 is not done yet", 0, 60)  # the skeleton, checked at start
        solution = (ROOT / "solutions" / "step_01.py").read_text()
        shown = len(output)
        (folder / "step_01.py").write_text(
            solution.replace("n_embd: int = 768", "n_embd: int = 512")
        )
        wrong = wait_for("n_embd is 512", shown, 10)
        shown = len(output)
        (folder / "step_01.py").write_text(solution)
        right = wait_for("Step 1 passes", shown, 10)
        print(f"verdicts {wrong:.1f} s and {right:.1f} s after the saves")
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 130
    finally:
        if process.poll() is None:
            process.kill()
    assert "Stopped watching." in "".join(output)
    time.sleep(0.5)
    assert learner_processes(str(folder)) == []


@pytest.mark.fast
def test_the_block_reads_a_real_report():
    """The sample reports are the checker's own output (python -m checks.samples writes them)."""
    failing = (ROOT / "docs" / "reports" / "step_04_skeleton.txt").read_text().splitlines()
    report = watch.read_report(failing, 1)
    assert not report.passed
    assert report.first_failure == [
        "FAIL  Attention output matches HuggingFace's GPT2Attention (eager, small config, batch 2, "
        "7 tokens)",
        "  GPT2MultiHeadAttention has no parameters yet: create its layers in __init__ (are they "
        "still None?).",
    ]
    assert report.summary.startswith("Step 4 runs on your step 1, which does not pass")
    assert report.summary.endswith("Start with the first failure above.")
    passing = (ROOT / "docs" / "reports" / "step_04_solution.txt").read_text().splitlines()
    report = watch.read_report(passing, 0)
    assert report.passed and report.first_failure == []
    assert report.summary.startswith("Step 4 passes")
