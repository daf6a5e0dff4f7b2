"""Broken learner code of every kind gets a one- or two-sentence message and exit 1, no traceback.

Code that does not even load (a syntax error, a bad import, a missing name, an error at import)
is tested in-process in tests/test_cli.py; these are the mistakes that need MAX to show."""

import signal
import time

import pytest


from tests.conftest import mutate, run_checks_here, signals_as_from_a_terminal, start_checks

BROKEN = {
    "exception in forward": (
        2,
        [("hidden_states = self.c_fc(hidden_states)  # [B, S, I]", "raise ValueError('oops')")],
        "GPT2MLP.forward raised ValueError at step_02.py line",
    ),
    "returns None": (
        2,
        [("return self.c_proj(hidden_states)  # [B, S, E]", "return None")],
        "returned None",
    ),
    "wrong shape": (
        2,
        [("return self.c_proj(hidden_states)  # [B, S, E]", "return hidden_states")],
        "expected shape [2, 7, 32], got [2, 7, 128]",
    ),
    "wrong dtype": (
        2,
        [
            (
                "return self.c_proj(hidden_states)  # [B, S, E]",
                "return self.c_proj(hidden_states).cast(DType.float64)",
            ),
            (
                "from max.experimental.tensor import Tensor",
                "from max.experimental.tensor import Tensor\nfrom max.dtype import DType",
            ),
        ],
        "expected dtype float32, got float64",
    ),
    "NaN output": (
        2,
        [
            (
                "return self.c_proj(hidden_states)  # [B, S, E]",
                "return self.c_proj(hidden_states) * float('nan')",
            )
        ],
        "the output holds NaN",
    ),
    "never returns": (
        2,
        [
            (
                "hidden_states = self.c_fc(hidden_states)  # [B, S, I]",
                "while True:\n            pass",
            )
        ],
        "did not finish within 5 s",
    ),
    "returns a tuple": (
        4,
        [
            (
                "return self.c_proj(self._merge_heads(attended))  # [B, S, E]",
                "return self.c_proj(self._merge_heads(attended)), weights",
            )
        ],
        "returned a tuple of 2 items",
    ),
}


@pytest.mark.parametrize("broken", BROKEN.values(), ids=BROKEN.keys())
def test_broken_code_gets_a_plain_message(learner_copy, broken, monkeypatch):
    step, replacements, message = broken
    mutate(learner_copy, step, replacements)
    # Only the endless loop gets a short limit: on a cold MAX cache a right call can take minutes.
    limit = ["--time-limit", "5"] if "did not finish" in message else []
    if limit:  # another process compiling into MAX's cache meanwhile must not extend the limit
        monkeypatch.setattr("checks.learner.max_cache_changed_since", lambda start: False)
    run = run_checks_here(str(step), "--dir", str(learner_copy), "--eager-only", *limit)
    run.assert_plain_failure(message)
    assert len(run.output.splitlines()) < 40, run.output


@pytest.mark.fast
def test_a_copied_link_without_its_target_does_not_stop_the_checker(tmp_path):
    """`cp -r solutions` copies the given files' links, which then point nowhere."""
    from checks import options, report

    (tmp_path / "step_01.py").write_text("# mine\n")
    (tmp_path / "gpt2_demo.py").symlink_to(tmp_path / "nowhere" / "gpt2_demo.py")
    previous = options.current()
    options.use(previous.but(steps_dir=tmp_path))
    try:
        first = report.PassedBefore().code
        (tmp_path / "step_01.py").write_text("# mine, edited\n")
        assert report.PassedBefore().code != first, "an edit must change the code's key"
    finally:
        options.use(previous)


@pytest.mark.fast
def test_a_stop_signal_during_an_in_process_run_stops_the_tests_too(tmp_path):
    """run_checks_here (the slip tests' runner) must not swallow CI's SIGTERM or a Ctrl+C."""
    (tmp_path / "step_01.py").write_text(
        "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n"
    )
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        run_checks_here("1", "--dir", str(tmp_path))
    assert signal.getsignal(signal.SIGTERM) is before, "the test session's handler is restored"


@pytest.mark.fast
def test_a_stop_signal_ignored_at_start_stays_ignored_and_the_others_stop(terminal_signals):
    """A background job (`python -m checks 4 &`) starts with Ctrl+C ignored, a `nohup` one with
    SIGHUP ignored too: the checker keeps them ignored, and SIGTERM still stops it."""
    from checks import runtime

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    runtime.install_stop_handlers()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)
    signals_as_from_a_terminal()
    runtime.install_stop_handlers()
    for signum in (signal.SIGINT, signal.SIGHUP):
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signum)


# A learner's step stuck in a native call that no signal ends, as the main thread is inside a MAX
# compile (a minute on 2 cores): a second lock of a plain pthread mutex never returns.
STUCK_IN_NATIVE_CODE = """
import ctypes
libc = ctypes.CDLL(None)
mutex = ctypes.create_string_buffer(64)  # zeroed: PTHREAD_MUTEX_INITIALIZER on glibc
libc.pthread_mutex_lock(mutex)
print("stuck", flush=True)
libc.pthread_mutex_lock(mutex)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_ends_a_check_stuck_in_a_native_call_within_2_s(tmp_path, signum):
    (tmp_path / "step_01.py").write_text(STUCK_IN_NATIVE_CODE)
    process = start_checks("1", "--dir", str(tmp_path))
    try:
        for line in process.stdout:
            if line.strip() == "stuck":
                break
        time.sleep(0.5)  # into the second lock
        process.send_signal(signum)
        sent = time.monotonic()
        assert process.wait(10) == 130
        waited = time.monotonic() - sent
    finally:
        process.kill()
    assert "Stopped." in process.stdout.read()
    assert waited < 2.0 + 0.5, f"stopped {waited:.1f} s after the signal"  # 0.5 s: a busy machine
