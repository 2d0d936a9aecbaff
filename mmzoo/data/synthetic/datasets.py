"""Public entry points of the built-in synthetic datasets.

`load_synthetic(name, split, ...)` returns an unbatched `tf.data.Dataset` of
example dicts; `generate_shapes_*` return the same examples as numpy arrays,
plus a `scene` dict (positions, colours, ...) for inspection and tests.
Both generate fixed-size chunks, each from its own seed stream
`(dataset, split, seed, chunk index)`, so:

* the same arguments give the same examples on every machine and run;
* the first `k` examples do not depend on `num_examples`;
* the splits never share an image;
* `test_unseen` holds (color, shape) pairs (`HELD_OUT_COMBINATIONS`) that the
  other splits never draw.
"""

import math

import numpy as np
import tensorflow as tf

from mmzoo.data._checks import check_int
from mmzoo.data.synthetic import shapes as S
from mmzoo.data.synthetic import shapes_captions
from mmzoo.data.synthetic import shapes_classification
from mmzoo.data.synthetic import shapes_video_qa

SYNTHETIC_DATASETS = ("shapes_captions", "shapes_video_qa", "shapes_classification")
DEFAULT_NUM_EXAMPLES = {"train": 5000, "validation": 500, "test": 500, "test_unseen": 500}
_MODULES = {
    "shapes_captions": shapes_captions,
    "shapes_video_qa": shapes_video_qa,
    "shapes_classification": shapes_classification,
}
_DEFAULT_IMAGE_SIZE = {"shapes_captions": 64, "shapes_video_qa": 32, "shapes_classification": 64}
_OPTIONS = {  # dataset-specific keyword arguments and their defaults
    "shapes_captions": {"captions_per_image": 5},
    "shapes_video_qa": {"num_frames": 8},
    "shapes_classification": {},
}
_MAX_IMAGE_SIZE = 512


def _validate(name, split, num_examples, seed, image_size, options):
    if name not in SYNTHETIC_DATASETS:
        raise ValueError(
            f"Unknown synthetic dataset. Expected `name` in {list(SYNTHETIC_DATASETS)}. "
            f"Received: name={name!r}"
        )
    if split not in S.SPLITS:
        raise ValueError(
            f"Unknown split. Expected `split` in {list(S.SPLITS)}. Received: split={split!r}"
        )
    if num_examples is None:
        num_examples = DEFAULT_NUM_EXAMPLES[split]
    check_int("num_examples", num_examples, 1)
    check_int("seed", seed, 0, 2**31 - 1)
    if image_size is None:
        image_size = _DEFAULT_IMAGE_SIZE[name]
    check_int("image_size", image_size, S.MIN_IMAGE_SIZE, _MAX_IMAGE_SIZE)
    unknown = sorted(set(options) - set(_OPTIONS[name]))
    if unknown:
        raise ValueError(
            f"`{name}` does not take {unknown}; its options are "
            f"{sorted(_OPTIONS[name])}. Received: {unknown[0]}={options[unknown[0]]!r}"
        )
    options = {**_OPTIONS[name], **options}
    if "num_frames" in options:
        check_int(
            "num_frames",
            options["num_frames"],
            shapes_video_qa.MIN_FRAMES,
            shapes_video_qa.MAX_FRAMES,
        )
    if "captions_per_image" in options:
        check_int(
            "captions_per_image",
            options["captions_per_image"],
            1,
            shapes_captions.MAX_CAPTIONS_PER_IMAGE,
        )
    return int(num_examples), int(image_size), options


def _chunk(name, split, seed, index, image_size, options):
    module = _MODULES[name]
    return module.generate_chunk(
        S.chunk_rng(name, split, seed, index),
        module.CHUNK_SIZE,
        image_size,
        unseen=split == "test_unseen",
        **options,
    )


def _concat(chunks, num_examples):
    first = chunks[0]
    if isinstance(first, dict):
        return {k: _concat([c[k] for c in chunks], num_examples) for k in first}
    return np.concatenate(chunks, axis=0)[:num_examples]


def _generate(name, num_examples, split, seed, image_size, options):
    num_examples, image_size, options = _validate(
        name, split, num_examples, seed, image_size, options
    )
    num_chunks = math.ceil(num_examples / _MODULES[name].CHUNK_SIZE)
    chunks = [_chunk(name, split, seed, i, image_size, options) for i in range(num_chunks)]
    return _concat(chunks, num_examples)


def generate_shapes_captions(
    num_examples, split="train", seed=0, image_size=64, captions_per_image=5
):
    """Images of 1-3 shapes with paraphrased, always-correct captions.

    Each image has 1-3 shapes (circle, square, triangle, diamond; small or
    large; six colours) in distinct cells of a 3x3 grid, on a dark grey
    background. Every caption names every shape by size, colour and kind;
    some add where it is ("in the top left corner") or how two shapes lie
    ("a small red circle to the left of a large blue square"), all computed
    from the drawn positions.

    Args:
        num_examples: int. Number of images.
        split: str. One of `"train"`, `"validation"`, `"test"`, `"test_unseen"`.
        seed: int >= 0.
        image_size: int in [24, 512]. Height and width in pixels.
        captions_per_image: int in [1, 5]. Distinct paraphrases per image.

    Returns:
        dict with `images` float32 `(num_examples, image_size, image_size, 3)`
        in [0, 1], `captions` object array `(num_examples,
        captions_per_image)` of str, and `scene`, a dict of per-shape arrays
        `(num_examples, 3)` (`colors`, `shapes`, `sizes`, `rows`, `cols` as
        indices, -1 where absent; `center_x`, `center_y`, `radius` in pixels)
        plus `num_shapes`.

    Example:

    ```python
    data = mmzoo.data.generate_shapes_captions(8, split="validation")
    data["captions"][0]  # e.g. ["a large red circle above a small blue square", ...]
    ```
    """
    return _generate(
        "shapes_captions", num_examples, split, seed, image_size,
        {"captions_per_image": captions_per_image},
    )


def generate_shapes_video_qa(num_examples, split="train", seed=0, image_size=32, num_frames=8):
    """Clips of moving, appearing and colour-changing shapes, one question each.

    Question types (equal shares): `color` ("what color is the circle at the
    end?"), `shape` ("what shape is the red object?"), `direction` ("which
    way does the red circle move?"), `count` ("how many shapes are there at
    the end?") and `order` ("which shape appears first?"). Answers come from
    `VIDEO_QA_ANSWERS`; within a type they are close to uniform, so the
    majority answer is a weak baseline.

    Args:
        num_examples: int. Number of clips (one question each).
        split: str. One of `"train"`, `"validation"`, `"test"`, `"test_unseen"`.
        seed: int >= 0.
        image_size: int in [24, 512]. Frame height and width in pixels.
        num_frames: int in [8, 16].

    Returns:
        dict with `videos` float32 `(num_examples, num_frames, image_size,
        image_size, 3)` in [0, 1]; `questions`, `answers`, `question_types`
        object arrays of str; `answer_ids` int32 (index in
        `VIDEO_QA_ANSWERS`); and `scene` (per clip, slot and frame: `center_x`,
        `center_y`, `visible`, `colors`; per slot: `shapes`, `radius`,
        `moves`, the index in `("left", "right", "up", "down")` or -1). The
        shape a question is about is always slot 2, drawn on top.

    Example:

    ```python
    data = mmzoo.data.generate_shapes_video_qa(4, num_frames=8)
    data["questions"][0], data["answers"][0]
    ```
    """
    return _generate(
        "shapes_video_qa", num_examples, split, seed, image_size, {"num_frames": num_frames}
    )


def generate_shapes_classification(num_examples, split="train", seed=0, image_size=64):
    """Image + yes/no question pairs whose label needs both modalities.

    The text asks "is there a red shape?" or "is there a circle?" (two
    phrasings each); the label is 1 ("yes") when the image has such a shape.
    Labels are balanced within every image and within every question text.

    Args:
        num_examples: int. Number of examples.
        split: str. One of `"train"`, `"validation"`, `"test"`, `"test_unseen"`.
        seed: int >= 0.
        image_size: int in [24, 512].

    Returns:
        dict with `images` float32 `(num_examples, image_size, image_size, 3)`,
        `texts` object array of str, `labels` int32 (index in
        `CLASSIFICATION_CLASS_NAMES`, `("no", "yes")`) and `scene` as in
        `generate_shapes_captions`.

    Example:

    ```python
    data = mmzoo.data.generate_shapes_classification(16)
    data["texts"][0], data["labels"][0]
    ```
    """
    return _generate("shapes_classification", num_examples, split, seed, image_size, {})


def _element_spec(name, image_size, options):
    if name == "shapes_captions":
        return {
            "images": tf.TensorSpec((image_size, image_size, 3), tf.float32),
            "captions": tf.TensorSpec((options["captions_per_image"],), tf.string),
        }
    if name == "shapes_video_qa":
        frames = options["num_frames"]
        return {
            "videos": tf.TensorSpec((frames, image_size, image_size, 3), tf.float32),
            "questions": tf.TensorSpec((), tf.string),
            "answers": tf.TensorSpec((), tf.string),
            "answer_ids": tf.TensorSpec((), tf.int32),
            "question_types": tf.TensorSpec((), tf.string),
        }
    return {
        "images": tf.TensorSpec((image_size, image_size, 3), tf.float32),
        "texts": tf.TensorSpec((), tf.string),
        "labels": tf.TensorSpec((), tf.int32),
    }


def load_synthetic(name, split="train", num_examples=None, seed=0, image_size=None, **kwargs):
    """A built-in synthetic dataset as an unbatched `tf.data.Dataset`.

    Nothing is downloaded: examples are generated lazily, a chunk at a time,
    inside the input pipeline (several chunks in parallel), exactly as the
    `generate_shapes_*` functions produce them.

    Args:
        name: str. `"shapes_captions"`, `"shapes_video_qa"` or
            `"shapes_classification"`.
        split: str. `"train"`, `"validation"`, `"test"` or `"test_unseen"`
            (held-out color/shape pairs).
        num_examples: int or None. None uses 5000 for train, 500 otherwise.
        seed: int >= 0.
        image_size: int in [24, 512], or None for the dataset's default
            (64; 32 for `shapes_video_qa`).
        **kwargs: `captions_per_image` (1-5, default 5) for
            `shapes_captions`; `num_frames` (8-16, default 8) for
            `shapes_video_qa`.

    Returns:
        `tf.data.Dataset` of dicts:
        `shapes_captions`: `images` `(image_size, image_size, 3)`, `captions`
        `(captions_per_image,)` string. `shapes_video_qa`: `videos`
        `(num_frames, image_size, image_size, 3)`, `questions`, `answers`,
        `question_types` string, `answer_ids` int32. `shapes_classification`:
        `images`, `texts` string, `labels` int32.

    Example:

    ```python
    train = mmzoo.data.load_synthetic("shapes_captions", split="train", num_examples=1000)
    for example in train.take(1):
        example["images"].shape, example["captions"]
    ```
    """
    num_examples, image_size, options = _validate(
        name, split, num_examples, seed, image_size, kwargs
    )
    spec = _element_spec(name, image_size, options)
    keys = list(spec)
    chunk_size = _MODULES[name].CHUNK_SIZE

    def make_chunk(index):
        chunk = _chunk(name, split, seed, int(index), image_size, options)
        outputs = []
        for key in keys:
            value = chunk[key]
            if value.dtype == object:
                value = np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])(value)
            outputs.append(value.astype(spec[key].dtype.as_numpy_dtype, copy=False))
        return outputs

    def to_dict(index):
        values = tf.numpy_function(
            make_chunk, [index], [spec[k].dtype for k in keys], stateful=False
        )
        return {
            k: tf.ensure_shape(v, (chunk_size,) + tuple(spec[k].shape))
            for k, v in zip(keys, values)
        }

    num_chunks = math.ceil(num_examples / chunk_size)
    dataset = tf.data.Dataset.range(num_chunks)
    dataset = dataset.map(to_dict, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.unbatch()
    # A known cardinality lets `take` and `len` work without a full pass.
    dataset = dataset.take(num_examples)
    return dataset.apply(tf.data.experimental.assert_cardinality(num_examples))


def synthetic_info(name):
    """Metadata of a synthetic dataset: vocabularies and held-out pairs.

    Args:
        name: str. One of `SYNTHETIC_DATASETS`.

    Returns:
        dict with `splits`, `colors`, `shapes`, `sizes`,
        `held_out_combinations`, and per dataset `answer_vocabulary` and
        `question_types` (`shapes_video_qa`) or `class_names`
        (`shapes_classification`).

    Example:

    ```python
    answers = mmzoo.data.synthetic_info("shapes_video_qa")["answer_vocabulary"]
    ```
    """
    if name not in SYNTHETIC_DATASETS:
        raise ValueError(
            f"Unknown synthetic dataset. Expected `name` in {list(SYNTHETIC_DATASETS)}. "
            f"Received: name={name!r}"
        )
    info = {
        "splits": list(S.SPLITS),
        "colors": list(S.COLORS),
        "shapes": list(S.SHAPES),
        "sizes": list(S.SIZES),
        "held_out_combinations": [list(c) for c in S.HELD_OUT_COMBINATIONS],
    }
    if name == "shapes_video_qa":
        info["answer_vocabulary"] = list(shapes_video_qa.ANSWERS)
        info["question_types"] = list(shapes_video_qa.QUESTION_TYPES)
    if name == "shapes_classification":
        info["class_names"] = list(shapes_classification.CLASS_NAMES)
    return info
