"""The recorder's rule for a compiled mismatch, on stand-in modules (no MAX compile): the learner
hears "right eagerly but wrong compiled" only when the eager output is right."""

from types import SimpleNamespace

import numpy as np
import pytest

from checks import recorder

pytestmark = pytest.mark.fast


class StandIn:
    """A learner module whose compiled graph gives `compiled` and whose forward gives `eager`."""

    def __init__(self, eager: np.ndarray, compiled: np.ndarray) -> None:
        self.eager, self.compiled = eager, compiled

    def __call__(self, x):
        return self.eager

    def compile(self, input_type):
        return lambda x: self.compiled


@pytest.fixture
def record(monkeypatch) -> recorder.Recorder:
    monkeypatch.setattr(recorder, "max_tensor", lambda x: x)
    monkeypatch.setattr(recorder, "check", SimpleNamespace(fail=lambda message: None))
    return recorder.Recorder("float32")


def compiled_failures(record, module, expected) -> list[str]:
    def compare_case(label, got, x, expected):
        return record.expect_close(f"Output ({label})", got, expected)

    x = np.zeros((2, 3, 4), np.float32)
    record.expect_compiled_matches("Module", module, [(x, expected)], compare_case)
    return record.failures


EXPECTED = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4)


def test_right_eagerly_and_wrong_compiled_is_said_so(record):
    failures = compiled_failures(record, StandIn(EXPECTED, EXPECTED + 1), EXPECTED)
    assert len(failures) == 2 and failures[0].startswith("Output (compiled, batch 2, 3 tokens)")
    assert failures[1] == recorder.EAGER_ONLY_RIGHT


def test_wrong_both_ways_is_not_blamed_on_the_graph(record):
    failures = compiled_failures(record, StandIn(EXPECTED + 1, EXPECTED + 1), EXPECTED)
    assert len(failures) == 1 and "right eagerly" not in failures[0]


def test_right_compiled_records_nothing(record):
    assert compiled_failures(record, StandIn(EXPECTED + 1, EXPECTED), EXPECTED) == []
