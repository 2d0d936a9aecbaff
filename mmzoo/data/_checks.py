"""Argument checks shared by `mmzoo.data` (messages end with `Received: ...`)."""

import numpy as np


def check_int(name, value, low, high=None):
    """Raises `ValueError` unless `value` is an int in [low, high]."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < low
        or (high is not None and value > high)
    ):
        expected = f"an int in [{low}, {high}]" if high is not None else f"an int >= {low}"
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")
    return int(value)


def check_image_shape(image_shape):
    """Returns (height, width) from (height, width) or (height, width, 3)."""
    shape = tuple(image_shape) if isinstance(image_shape, (list, tuple)) else None
    if (
        shape is None
        or len(shape) not in (2, 3)
        or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
            for d in shape
        )
        or (len(shape) == 3 and shape[2] != 3)
    ):
        raise ValueError(
            "`image_shape` must be (height, width) or (height, width, 3) with "
            f"positive ints. Received: image_shape={image_shape!r}"
        )
    return int(shape[0]), int(shape[1])
