"""The comparison and its words, on numpy arrays in-process (no MAX, no subprocess): what a
mismatch says and where the tolerances lie (tests/test_slip_hints.py: which hint each mistake gets).

Every expected phrase and tolerance here is written out by hand, not read from checks/: change a
hint's wording or a tolerance there and a test here fails (then change it here too, on purpose).
"""

import ast

import numpy as np
import pytest

from checks import options
from checks.compare import Slip, difference, mismatch
from checks.learner import LearnerError
from checks.modules import load_weights
from tests.conftest import ROOT

pytestmark = pytest.mark.fast


@pytest.fixture
def bfloat16():
    previous = options.current()
    options.use(previous.but(dtype="bfloat16"))
    yield
    options.use(previous)


# What a mismatch says.


def test_equal_arrays_are_no_mismatch():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert mismatch("x", x, x.copy()) is None


def test_a_difference_names_where_how_much_and_how_often():
    expected = np.zeros((2, 3), np.float32)
    got = expected.copy()
    got[1, 2] = 0.5
    message = mismatch("Attention output", got, expected)
    assert message == (
        "Attention output: largest difference 0.5 at [1, 2] (expected 0, got 0.5; tolerance "
        "1e-05 + 1e-05·|expected|); 16.7% of 6 elements differ."
    )


def test_an_exact_check_says_it_is_exact():
    expected = np.array([0.0, -np.inf], np.float32)
    message = mismatch("causal_mask(2, 0)", np.zeros(2, np.float32), expected, atol=0, rtol=0)
    assert message == (
        "causal_mask(2, 0): largest difference inf at [1] (expected -inf, got 0; the check is "
        "exact); 50% of 2 elements differ."
    )


def test_same_sizes_in_another_order_point_at_transposes():
    message = mismatch("x", np.zeros((3, 2), np.float32), np.zeros((2, 3), np.float32))
    assert message.startswith("x: expected shape [2, 3], got [3, 2]."), message
    assert "check transposes and which axes you reshape" in message


def test_another_number_of_axes_points_at_reshapes():
    message = mismatch("x", np.zeros((6,), np.float32), np.zeros((2, 3), np.float32))
    assert "A different number of axes: check where you reshape, split or merge." in message


def test_a_wrong_dtype_is_named():
    message = mismatch("x", np.zeros(3, np.float64), np.zeros(3, np.float32))
    assert message == "x: expected dtype float32, got float64."


def test_nan_is_named_with_its_causes():
    got = np.array([0.0, np.nan, 1.0, np.nan], np.float32)
    message = mismatch("scores", got, np.zeros(4, np.float32))
    assert "the output holds NaN (50% of elements, first at [1])" in message
    assert "0/0, inf - inf, or a softmax row that is masked entirely" in message


def test_inf_where_none_is_expected_is_named():
    got = np.array([0.0, np.inf], np.float32)
    assert "the output holds Inf" in mismatch("x", got, np.zeros(2, np.float32))


def test_matching_infinities_are_no_difference():
    mask = np.array([0.0, -np.inf], np.float32)
    assert mismatch("mask", mask, mask.copy(), atol=0, rtol=0) is None


@pytest.mark.parametrize(
    "value, said",
    [
        (None, "returned None: return the result (is it still the skeleton's placeholder?)"),
        ((1, 2), "returned a tuple of 2 items; it should return one Tensor."),
        ("text", "returned a str; it should return a MAX Tensor."),
    ],
)
def test_what_is_not_a_tensor_is_a_learner_error(value, said):
    with pytest.raises(LearnerError, match=r"^GPT2MLP\.forward ") as error:
        mismatch("GPT2MLP.forward", value, np.zeros(2, np.float32))
    assert said in str(error.value)


# Where the tolerances lie, as docs/setup.md and docs/reference.md tell the learner: a check's
# default is 1e-5 absolute plus 1e-5 relative in float32; bfloat16 widens both to at least 3e-2
# (the absolute one times the largest expected magnitude).
SETUP, REFERENCE = ((ROOT / "docs" / name).read_text() for name in ("setup.md", "reference.md"))


def test_the_pages_state_the_tolerances_tested_here():
    page = " ".join(SETUP.split())
    assert "float32 (by default 1e-5 + 1e-5·|expected|, unless a check needs its own)" in page
    assert "(to at least 3e-2, absolute and relative)" in " ".join(REFERENCE.split())


def just(expected: np.ndarray, margin: float, factor: float) -> np.ndarray:
    """`expected` moved by `factor` times `margin` (float64: the steps are finer than float32's)."""
    return expected + factor * margin


@pytest.mark.parametrize("value", [0.0, 1.0, 40.0])
def test_the_default_float32_tolerance_is_1e_5_plus_1e_5_relative(value):
    expected = np.full(3, value)
    margin = 1e-5 + 1e-5 * value
    assert mismatch("x", just(expected, margin, 0.9), expected, dtype=None) is None
    assert mismatch("x", just(expected, margin, 1.1), expected, dtype=None) is not None


def test_a_check_s_own_tolerance_is_used():
    expected = np.zeros(3)
    assert difference(just(expected, 1e-3, 0.9), expected, atol=1e-3, rtol=0)[0]
    assert not difference(just(expected, 1e-3, 1.1), expected, atol=1e-3, rtol=0)[0]


def test_bfloat16_widens_the_tolerance_to_3e_2_of_the_largest_magnitude():
    bf16 = {"dtype": None, "precision": "bfloat16"}
    expected = np.array([0.0, 0.0, 5.0])  # absolute margin 3e-2 * 5; relative 3e-2 * |expected|
    assert mismatch("x", just(expected, 0.15, 0.9), expected, **bf16) is None
    assert mismatch("x", just(expected, 0.15, 1.1), expected, **bf16) is not None
    small = np.zeros(3)  # below magnitude 1 the absolute margin stays 3e-2
    assert mismatch("x", just(small, 3e-2, 0.9), small, **bf16) is None
    assert mismatch("x", just(small, 3e-2, 1.1), small, **bf16) is not None


def test_the_tolerances_follow_the_precision_given_never_the_run_s_options(bfloat16):
    """compare reads no options: a caller passes the run's dtype (the recorder passes its own)."""
    source = (ROOT / "checks" / "compare.py").read_text()
    assert "options.current" not in source and "import options" not in source
    expected = np.zeros(3)  # the options say bfloat16 (the fixture); the caller says float32
    assert mismatch("x", just(expected, 1e-3, 1.0), expected, dtype=None) is not None
    widened = mismatch("x", just(expected, 1e-3, 1.0), expected, dtype=None, precision="bfloat16")
    assert widened is None


def test_every_comparison_in_the_grader_says_its_precision():
    """Each call of mismatch in checks/ passes `precision` (a forgotten one would compare a
    bfloat16 run with float32's tolerances); the recorder passes the run's own."""
    missing = []
    for path in sorted((ROOT / "checks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "mismatch"
                and not any(k.arg in ("precision", None) for k in node.keywords)
            ):
                missing.append(f"{path.name} line {node.lineno}")
    assert not missing, f"mismatch without precision= at {missing}"


def test_a_slip_is_named_within_ten_times_the_check_s_tolerance():
    expected, got = np.zeros(4), np.ones(4)
    near, far = got + 9 * 2e-5, got + 11 * 2e-5  # tolerance 1e-5 + 1e-5 * |1|
    assert mismatch("x", got, expected, dtype=None, slips=[Slip("near", near)]).endswith("near")
    assert "Hint" not in mismatch("x", got, expected, dtype=None, slips=[Slip("far", far)])


# Loading the reference's weights into the learner's module: a stand-in module, no MAX.


class StandIn:
    """What load_weights asks of a module: its parameters, and a load_state_dict that records."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        self.parameters = [(name, np.zeros(shape, np.float32)) for name, shape in shapes.items()]
        self.loaded = None

    def load_state_dict(self, state, auto_cast=False):
        self.loaded = state


def test_weights_that_fit_are_loaded():
    state = {"c_fc.weight": np.ones((8, 4), np.float32), "c_fc.bias": np.ones(8, np.float32)}
    module = StandIn({"c_fc.weight": (8, 4), "c_fc.bias": (8,)})
    assert load_weights("GPT2MLP", module, state) is module and module.loaded is state


def test_missing_extra_and_misshaped_weights_are_named_in_one_sentence():
    state = {
        "mlp.c_fc.weight": np.ones((8, 4), np.float32),
        "ln_1.weight": np.ones(4, np.float32),
    }
    module = StandIn({"mlp.c_fc.weight": (4, 8), "ln1.weight": (4,)})
    with pytest.raises(LearnerError) as error:
        load_weights("GPT2Block", module, state)
    assert str(error.value) == (
        "GPT2Block does not have GPT-2's parameters: it has no parameter ln_1.weight "
        "(HuggingFace's names; is a layer still None or named differently?); it has parameters "
        "HuggingFace's module does not: ln1.weight; mlp.c_fc.weight has shape [4, 8], expected "
        "[8, 4] (the MLP's width is config.n_inner, or 4 * n_embd when that is None; a MAX Linear "
        "stores its weight as [out_features, in_features])."
    )
    assert module.loaded is None


def test_a_module_without_parameters_is_told_to_create_its_layers():
    with pytest.raises(LearnerError, match=r"GPT2MLP has no parameters yet: create its layers"):
        load_weights("GPT2MLP", StandIn({}), {"c_fc.weight": np.ones((8, 4))})
