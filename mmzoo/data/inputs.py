"""NumPy checks of what users pass to the model families' methods.

`generate`, `answer`, `encode_images`, `encode_text`... take raw arrays and
strings. Their inputs are checked here, in NumPy, before anything is traced
or compiled, so that bad input gets a message naming the argument instead
of a constant caption (NaN images), a silently wrong result (pixels in
0..255 read as if in [0, 1]) or an error from deep inside XLA. The in-graph
`*_tensor` methods and compiled functions (SavedModel export) get none of
these checks: they must stay traceable.

Messages follow the project pattern: what was expected, then
`Received: name=value` (or `Received: name with shape ...` for arrays).
"""

import numbers

import keras
import numpy as np
from keras import ops

# Float pixels may stray this far outside [0, 1] (rounding); they are
# clipped. The tolerance of `mmzoo.data`'s file loaders (`files._FLOAT_LOW`,
# `_FLOAT_HIGH`), float32 so that both draw the same line; restated, not
# imported, because `mmzoo.models` does not import the TensorFlow-only
# `mmzoo.data`.
_PIXEL_TOLERANCE = np.float32(1 / 255)
_MAX_LISTED_ROWS = 10


def check_batch_size(batch_size):
    """`batch_size` as a Python int, or None ("all inputs at once")."""
    if batch_size is None:
        return None
    if not _is_int(batch_size) or batch_size <= 0:
        raise ValueError(
            "`batch_size` must be a positive int, or None to run all inputs at once. "
            f"Received: batch_size={batch_size!r}"
        )
    return int(batch_size)


def check_number(name, value, low, high=None, expected="a number"):
    """`value` as a Python float; refused unless a finite real number in `(low, high]`.

    `expected` is the phrase of the message (e.g. "a positive number").
    """
    is_real = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    number = float(value) if is_real else float("nan")
    if not (np.isfinite(number) and number > low and (high is None or number <= high)):
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")
    return number


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def describe(value):
    """A short description of what was passed: type, and dtype and shape of arrays."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        try:
            dtype = keras.backend.standardize_dtype(value.dtype)
        except ValueError:  # strings, objects
            dtype = str(value.dtype)
        return f"{type(value).__name__} of dtype {dtype} and shape {tuple(value.shape)}"
    if isinstance(value, dict):
        return f"dict with keys {sorted(map(str, value))}"
    if isinstance(value, (list, tuple)):
        kinds = sorted({type(v).__name__ for v in value})
        return f"{type(value).__name__} of {len(value)} items of type {', '.join(kinds) or '-'}"
    return f"{type(value).__name__} {value!r}"


# ------------------------------------------------------------------ pixels
def pixel_array(name, pixels, item_shape=None):
    """`pixels` as a numeric NumPy array (not yet scaled).

    An empty list becomes an empty batch `(0,) + item_shape` when
    `item_shape` is given.
    """
    try:
        array = np.asarray(pixels)
    except (ValueError, TypeError) as error:  # e.g. a list of differently sized images
        raise ValueError(
            f"`{name}` must be an array (batch, ...) of uint8 or floats in [0, 1]. "
            f"Received: {name} that NumPy cannot stack ({error})"
        ) from None
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise ValueError(
            f"`{name}` must be an array of uint8 or floats in [0, 1]. "
            f"Received: {name} with dtype {array.dtype} and shape {array.shape}"
        )
    if item_shape is not None and array.shape == (0,):
        array = array.reshape((0,) + tuple(item_shape))
    return array


def check_pixel_shape(name, array, item_shape, batch_name="batch"):
    """Refuses `array` unless it is `(batch,) + item_shape`."""
    item_shape = tuple(item_shape)
    if array.ndim != len(item_shape) + 1 or tuple(array.shape[1:]) != item_shape:
        raise ValueError(
            f"`{name}` must have shape ({batch_name}, {', '.join(map(str, item_shape))}). "
            f"Received: {name} with shape {array.shape}"
        )


def unit_float_pixels(name, array):
    """float32 pixels in [0, 1] from uint8 (scaled by 1/255) or float `array`.

    Refuses NaN or inf (naming how many and in which batch rows), and float
    values more than 1/255 outside [0, 1] (naming the range found and the
    fix); values within that tolerance are clipped, as the data loaders do.
    """
    if array.dtype == np.uint8:
        return array.astype("float32") / np.float32(255.0)
    array = array.astype("float32")
    if array.size == 0:
        return array
    finite = np.isfinite(array)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.reshape(len(array), -1).all(axis=1))
        rows = [int(r) for r in bad_rows[:_MAX_LISTED_ROWS]]
        more = f" and {len(bad_rows) - len(rows)} more" if len(bad_rows) > len(rows) else ""
        raise ValueError(
            f"`{name}` must hold finite values (no NaN or inf). Received: {name} with "
            f"{int(array.size - finite.sum())} non-finite values, in batch rows {rows}{more} "
            f"(of {len(array)})"
        )
    low, high = float(array.min()), float(array.max())
    if low < -_PIXEL_TOLERANCE or high > 1 + _PIXEL_TOLERANCE:
        if low >= -_PIXEL_TOLERANCE and high <= 255 + _PIXEL_TOLERANCE:
            hint = "divide uint8 pixels by 255 (or pass them as a uint8 array)"
        elif low >= -1 - _PIXEL_TOLERANCE and high <= 1 + _PIXEL_TOLERANCE:
            hint = "map [-1, 1] to [0, 1] with (x + 1) / 2"
        else:
            hint = "rescale them to [0, 1]"
        raise ValueError(
            f"`{name}` must be floats in [0, 1] (or uint8 in [0, 255]); found values in "
            f"[{low:g}, {high:g}]: {hint}. Received: {name} with values in [{low:g}, {high:g}]"
        )
    return np.clip(array, 0.0, 1.0)


def prepare_pixels(name, pixels, item_shape, batch_name="batch"):
    """Checked float32 pixels `(batch,) + item_shape` in [0, 1] (see above)."""
    array = pixel_array(name, pixels, item_shape)
    check_pixel_shape(name, array, item_shape, batch_name)
    return unit_float_pixels(name, array)


# ------------------------------------------------------------------ tokens
def _embedding_size(layer):
    size = getattr(layer, "vocabulary_size", None)  # keras-hub embeddings
    if size is None and isinstance(layer, keras.layers.Embedding):  # and subclasses
        size = getattr(layer, "input_dim", None)
    return int(size) if _is_int(size) else None


def token_vocabulary_size(encoder):
    """The vocabulary size of a text encoder's token embedding, or None if unknown.

    The embedding that takes the `token_ids` input, else the first
    embedding found. Not simply the first: a BERT-style tower (KerasHub's
    `BertBackbone`) has a segment embedding, of size 2, beside its token one.
    """
    try:
        inputs = encoder.input
    except (AttributeError, ValueError):  # not a functional model
        inputs = None
    token_ids = inputs.get("token_ids") if isinstance(inputs, dict) else None
    if token_ids is not None:
        for layer in encoder._flatten_layers(include_self=False, recursive=True):
            nodes = getattr(layer, "_inbound_nodes", [])
            if any(t is token_ids for node in nodes for t in node.input_tensors):
                size = _embedding_size(layer)
                if size is not None:
                    return size
    for layer in encoder._flatten_layers(include_self=False, recursive=True):
        size = _embedding_size(layer)
        if size is not None:
            return size
    return None


def check_token_ids(name, token_ids, length, vocabulary_size=None, hint=""):
    """int32 `(batch, length)` token ids, refused unless integers in range."""
    array = np.asarray(token_ids)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"`{name}` must be integer token ids (batch, {length}). "
            f"Received: {name} with dtype {array.dtype} and shape {array.shape}"
        )
    if array.ndim != 2 or array.shape[1] != length:
        raise ValueError(
            f"`{name}` must have shape (batch, {length}){hint}. "
            f"Received: {name} with shape {array.shape}"
        )
    if vocabulary_size is not None and array.size:
        low, high = int(array.min()), int(array.max())
        if low < 0 or high >= vocabulary_size:
            raise ValueError(
                f"`{name}` must be ids in [0, {vocabulary_size}) (the encoder's "
                f"vocabulary_size; tokenize with the tokenizer used in training). "
                f"Received: {name} with values in [{low}, {high}]"
            )
    return array.astype("int32")


def check_padding_mask(name, padding_mask, shape):
    """bool padding mask of `shape` (bools or 0/1 ints)."""
    array = np.asarray(padding_mask)
    if tuple(array.shape) != tuple(shape):
        raise ValueError(
            f"`{name}` must have the shape of the token ids, {tuple(shape)}. "
            f"Received: {name} with shape {array.shape}"
        )
    if array.dtype != bool and not (
        np.issubdtype(array.dtype, np.number) and np.isin(array, (0, 1)).all()
    ):
        raise ValueError(
            f"`{name}` must be bools (or 0/1). Received: {name} with dtype {array.dtype}"
        )
    return array.astype(bool)


def as_strings(name, texts, expected):
    """`texts` as a list of str if it is a list/tuple/1-D array of str or bytes, else None.

    A single string is refused (`expected` says what to pass instead).
    """
    if isinstance(texts, (str, bytes)):
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={texts!r}")
    if isinstance(texts, np.ndarray):
        if texts.ndim != 1 or texts.dtype.kind not in "USO":
            return None
        texts = list(texts)
    if not isinstance(texts, (list, tuple)):
        return None
    if not all(isinstance(t, (str, bytes)) for t in texts):
        return None
    # Invalid UTF-8 becomes U+FFFD, as the tokenizers read it (never an error).
    return [t.decode("utf-8", "replace") if isinstance(t, bytes) else t for t in texts]


# ---------------------------------------------------------------- batching
def run_in_batches(function, inputs, batch_size, empty):
    """`function(*chunk)` over `inputs` in chunks of `batch_size` rows, as NumPy.

    `inputs` is a tuple of arrays or dicts of arrays, all with the same
    number of rows. The last chunk is padded by repeating its last row, so
    one compiled function serves every chunk. With no rows the function is
    not called and `empty` is returned. `batch_size=None` runs all rows at
    once.
    """
    first = inputs[0]
    count = len(next(iter(first.values())) if isinstance(first, dict) else first)
    if count == 0:
        return empty
    batch_size = batch_size or count

    def rows(x, start, missing):
        if isinstance(x, dict):
            return {k: rows(v, start, missing) for k, v in x.items()}
        part = np.asarray(x[start : start + batch_size])
        if missing:
            part = np.concatenate([part, np.repeat(part[-1:], missing, axis=0)])
        return part

    outputs = []
    for start in range(0, count, batch_size):
        real = min(batch_size, count - start)
        chunk = [rows(x, start, batch_size - real) for x in inputs]
        outputs.append(ops.convert_to_numpy(function(*chunk))[:real])
    return np.concatenate(outputs, axis=0)
