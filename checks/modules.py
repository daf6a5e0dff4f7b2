"""The learner's modules, built without random initialisation and given the reference's weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from checks import options
from checks.learner import LearnerError, call, describe_exception, learner_attr, not_none
from checks.runtime import device, low_precision
from checks.tensors import bfloat16


# Named in a wrong shape of an MLP's weight (a block that ignores n_inner).
MLP_WIDTH = "the MLP's width is config.n_inner, or 4 * n_embd when that is None"


def build_learner_module(what: str, factory: Any, *args: Any) -> Any:
    """Construct the learner's module without random initialisation (fast; weights come next)."""
    from max.experimental import functional as F

    with F.lazy():
        return not_none(what, call(f"Creating {what}", factory, *args))


def learner_module(step: int, class_name: str, state: dict[str, np.ndarray], *args: Any) -> Any:
    """The learner's `class_name(*args)` from step `step`, holding the weights in `state`."""
    module = build_learner_module(class_name, learner_attr(step, class_name), *args)
    return load_weights(class_name, module, state)


def load_weights(what: str, module: Any, state: dict[str, np.ndarray]) -> Any:
    """Load `state` into the learner's module, first naming any missing, extra or misshaped weight."""
    try:
        params = {name: [int(d) for d in t.shape] for name, t in module.parameters}
    except Exception as error:
        raise LearnerError(
            describe_exception(f"Listing the parameters of {what}", error)
        ) from error
    expected = {name: list(value.shape) for name, value in state.items()}
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    problems = []
    if not params:
        raise LearnerError(
            f"{what} has no parameters yet: create its layers in __init__ (are they still None?)."
        )
    if missing:
        problems.append(
            f"it has no parameter {', '.join(missing)} (HuggingFace's names; is a layer still None "
            "or named differently?)"
        )
    if extra:
        problems.append(f"it has parameters HuggingFace's module does not: {', '.join(extra)}")
    for name in sorted(set(params) & set(expected)):
        if params[name] != expected[name]:
            width = f"{MLP_WIDTH}; " if ".mlp." in f".{name}" else ""
            problems.append(
                f"{name} has shape {params[name]}, expected {expected[name]} ({width}a MAX Linear "
                "stores its weight as [out_features, in_features])"
            )
    if problems:
        raise LearnerError(f"{what} does not have GPT-2's parameters: " + "; ".join(problems) + ".")
    if low_precision():  # cast here: a MAX cast would compile a graph per shape
        state = {name: bfloat16(value) for name, value in state.items()}
    call(f"Loading weights into {what}", module.load_state_dict, state, auto_cast=True)
    if options.current().device != "cpu":
        call(f"Moving {what} to the GPU", module.to, device())
    return module
