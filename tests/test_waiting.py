"""Never a silent wait, and compiling never counts as the learner's time (issue 11)."""

import time

import pytest

from checks import harness


def spoken_lines(wait: harness.Waiting, seconds: float) -> list[tuple[float, str]]:
    lines: list[tuple[float, str]] = []
    start = time.monotonic()
    wait.speak = lambda line: lines.append((time.monotonic() - start, line))
    with wait.announce("compiling a stand-in"):
        time.sleep(seconds)
    return [(0.0, "start"), *lines, (time.monotonic() - start, "end")]


@pytest.mark.fast
def test_a_slow_wait_says_what_it_is_then_beats_until_it_ends():
    lines = spoken_lines(harness.Waiting(after_s=0.05, every_s=0.15), 0.7)
    texts = [text for _, text in lines]
    assert texts[1] == "  … compiling a stand-in" and texts[-2].startswith("  … done")
    assert any("still working" in text for text in texts)


def test_no_silence_is_longer_than_every_s():
    """Wall-clock gaps: in the unmarked tier, since a busy machine's scheduler stretches them."""
    lines = spoken_lines(harness.Waiting(after_s=0.05, every_s=0.15), 0.7)
    assert sum("still working" in text for _, text in lines) >= 3
    gaps = [later - earlier for (earlier, _), (later, _) in zip(lines, lines[1:], strict=False)]
    assert max(gaps) < 0.15 + 0.2, gaps  # never silent longer than every_s, with some slack


@pytest.mark.fast
def test_a_short_wait_prints_nothing():
    assert [text for _, text in spoken_lines(harness.Waiting(after_s=0.5), 0.1)] == ["start", "end"]


@pytest.mark.fast
def test_the_first_run_notice_comes_only_with_a_slow_wait_and_only_once():
    wait = harness.Waiting(after_s=0.15, every_s=5)
    with wait.noting("First MAX run on this machine"):
        assert [text for _, text in spoken_lines(wait, 0.02)] == ["start", "end"]  # no compile
        texts = [text for _, text in spoken_lines(wait, 0.3)]
        assert texts[1:3] == ["  First MAX run on this machine", "  … compiling a stand-in"]
        assert "  First MAX run on this machine" not in [t for _, t in spoken_lines(wait, 0.3)]


@pytest.mark.fast
def test_the_first_run_notice_ends_with_its_block():
    wait = harness.Waiting(after_s=0.05, every_s=5)
    with wait.noting("First MAX run on this machine"):
        pass
    assert "  First MAX run on this machine" not in [t for _, t in spoken_lines(wait, 0.15)]


@pytest.mark.fast
def test_the_defaults_keep_every_silence_under_15_seconds():
    wait = harness.Waiting()
    assert wait.after_s <= 5 and wait.every_s <= 15


@pytest.mark.fast
def test_an_endless_loop_still_times_out(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(harness.LearnerError, match="did not finish within 1 s"):
        with harness.time_limit(1.0, "the stand-in"):
            while True:
                pass


@pytest.mark.fast
def test_time_while_max_compiles_does_not_count(tmp_path, monkeypatch):
    """A stand-in that writes to MAX's cache meanwhile, as a compile does, runs past the limit."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = tmp_path / "modular"
    cache.mkdir()
    with harness.time_limit(0.2, "the stand-in"):
        for number in range(6):  # 0.6 s, three times the limit
            (cache / f"kernel-{number}").write_text("compiled")
            time.sleep(0.1)


@pytest.mark.fast
def test_warm_shows_a_bar_and_an_estimate_and_names_a_failing_step(capsys):
    from checks import tools
    from checks.report import Result

    ran = []

    def run_step(step):
        ran.append(step)
        return [Result("a check", passed=step != 7)]

    assert tools.warm(run_step) is False
    out = capsys.readouterr().out
    assert ran == sorted(harness.COMPILING_STEPS)
    bars = [line for line in out.splitlines() if line.startswith("  [")]
    assert len(bars) == len(ran) and "left)" in bars[0]
    assert "the reference solution of step 7 did not pass" in out
    assert f"{len(ran) - 1} of {len(ran)} steps warmed" in out and "steps 7 did not" in out
    assert "done in" not in out


@pytest.mark.fast
def test_warm_that_warms_everything_says_done_and_warm_n_warms_only_step_n(capsys):
    from checks import tools
    from checks.report import Result

    ran = []

    def run_step(step):
        ran.append(step)
        return [Result("a check", passed=True)]

    assert tools.warm(run_step) is True
    bars = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  [")]
    assert bars[-1].startswith("  [####################]") and "done in" in bars[-1]
    ran.clear()
    assert tools.warm(run_step, only=4) is True
    assert ran == [4]
