"""Argument checks shared by mmzoo layers and builders.

Messages follow one pattern: what was expected, then `Received: name=value`.
The numeric checks return the value as a plain Python number: NumPy scalars
(`np.int64(8)`, from a config array or a sweep) are accepted, and storing
the returned value keeps `get_config` JSON-clean.
"""

import numpy as np


def check_positive_int(name, value):
    """Returns `value` as a Python int; refuses bools, floats and values <= 0."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, np.integer))
        or value <= 0
    ):
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def check_bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")


def check_rate(name, value):
    """Returns `value` as a Python float in [0, 1)."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not 0.0 <= value < 1.0
    ):
        raise ValueError(f"`{name}` must be a float in [0, 1). Received: {name}={value!r}")
    return float(value)


def check_divisible(name, value, divisor_name, divisor):
    if value % divisor != 0:
        raise ValueError(
            f"`{name}` must be divisible by `{divisor_name}` ({divisor}). "
            f"Received: {name}={value}"
        )


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {sorted(choices)}. Received: {name}={value!r}"
        )


def check_rank(name, shape, rank, layout):
    if len(shape) != rank:
        raise ValueError(
            f"`{name}` must have rank {rank} {layout}. Received: {name} with shape "
            f"{tuple(shape)}"
        )
