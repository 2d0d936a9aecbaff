"""Pure `dict -> dict` preprocessing ops, in the big_vision style.

Each function here builds an op: a callable that takes an example dict and
returns a new dict (the input is not modified; keys it does not touch pass
through). Ops work on one example and, where noted, on a batch of them, both
eagerly and inside `tf.data.Dataset.map`.

Example:

```python
resize = mmzoo.data.ops.resize(image_shape=(32, 32))
tokenize = mmzoo.data.ops.tokenize(tokenizer, key="questions", prefix="question_")
dataset = dataset.map(lambda x: tokenize(resize(x)))
```
"""

import tensorflow as tf

from mmzoo.data._checks import check_image_shape
from mmzoo.data.images import resize_images
from mmzoo.data.preprocessing import text_packer


def resize(image_shape, key="images"):
    """Resizes images or video frames under `key` to `image_shape`.

    Shrinking averages the input pixels each output pixel covers (area
    resampling, anti-aliased); enlarging is bilinear with antialiasing;
    images already at `image_shape` are only cast. Output float32 clipped
    to [0, 1]. The serving signatures of `mmzoo.export` resample with the
    same rule, so a served model sees the pixels it was trained on. Works on
    any rank >= 3 (`(h, w, 3)`, `(frames, h, w, 3)`, and batches of either).

    Args:
        image_shape: (height, width) or (height, width, 3).
        key: str. `"images"` or `"videos"`.

    Returns:
        an op.

    Example:

    ```python
    dataset = dataset.map(mmzoo.data.ops.resize((64, 64)))
    ```
    """
    height, width = check_image_shape(image_shape)

    def op(example):
        out = resize_images(example[key], height, width)
        return {**example, key: tf.clip_by_value(out, 0.0, 1.0)}

    return op


def tokenize(tokenizer, key="captions", prefix=""):
    """Tokenizes the text under `key` (any shape) with a `TextTokenizer`.

    Adds `f"{prefix}token_ids"` and `f"{prefix}padding_mask"`; e.g.
    `prefix="question_"` gives `question_token_ids` and
    `question_padding_mask`. A preprocessor that makes segment ids (that of
    a dual encoder with a BERT-style text tower) also adds
    `f"{prefix}segment_ids"`. Works on single examples and batches.

    Args:
        tokenizer: a model with a preprocessor, a family preprocessor (which
            packs to the model's length), or a `mmzoo.data.TextTokenizer`
            with a `sequence_length`.
        key: str. The text key.
        prefix: str. Prefix of the new keys.

    Returns:
        an op.

    Example:

    ```python
    op = mmzoo.data.ops.tokenize(tokenizer, key="questions", prefix="question_")
    op({"questions": "what color is the circle?"})["question_token_ids"]
    ```
    """

    pack = text_packer(tokenizer, "tokenizer")

    def op(example):
        outputs = pack(example[key])
        return {**example, **{prefix + name: value for name, value in outputs.items()}}

    return op


def choose_caption(key="captions", random_key="caption_random"):
    """Replaces a vector of reference captions by one of them.

    The choice is the `example[random_key] % n`-th of the `n` non-empty
    captions, where `random_key` holds a random int64 (the pipelines zip in
    `tf.data.Dataset.random`), so the op itself is deterministic. Empty
    strings are never drawn: they pad the caption vectors of images with
    fewer captions (`Dataset.padded_batch`); an image whose captions are all
    empty gets an empty caption. `random_key` is removed. Works on single
    examples (`captions` `(n,)`, scalar random) and on batches: `(b, n)`, or
    a `tf.RaggedTensor` `(b, None)` (`Dataset.ragged_batch`), with randoms
    `(b,)`.

    Args:
        key: str. Key of the caption vectors.
        random_key: str. Key of the random integers.

    Returns:
        an op.

    Example:

    ```python
    op = mmzoo.data.ops.choose_caption()
    op({"captions": ["a red circle", "a circle"], "caption_random": 7})  # "a circle"
    op({"captions": ["a red circle", "", "a circle"], "caption_random": 7})  # "a circle"
    ```
    """

    def op(example):
        example = dict(example)
        captions = example[key]
        random = tf.convert_to_tensor(example.pop(random_key), tf.int64)
        if isinstance(captions, tf.RaggedTensor):
            captions = captions.to_tensor(default_value="")
        captions = tf.convert_to_tensor(captions)
        present = tf.not_equal(captions, "")
        num = tf.reduce_sum(tf.cast(present, tf.int64), axis=-1)
        wanted = tf.math.floormod(random, tf.maximum(num, 1))
        # The wanted-th present caption: the one with `wanted` present ones
        # before it (the first caption when none is present).
        before = tf.cumsum(tf.cast(present, tf.int64), axis=-1, exclusive=True)
        found = tf.logical_and(present, tf.equal(before, wanted[..., None]))
        index = tf.argmax(tf.cast(found, tf.int32), axis=-1, output_type=tf.int64)
        example[key] = tf.gather(captions, index, axis=-1, batch_dims=random.shape.rank)
        return example

    return op


def answers_to_ids(answer_vocabulary, key="answers", fold_case=False):
    """Adds `answer_ids` int32, the index of `example[key]` in the vocabulary.

    Answers outside the vocabulary get -1 (the video QA pipeline drops them,
    and counts them). Works on single examples and batches.

    Args:
        answer_vocabulary: sequence of str, without repeats.
        key: str. Key of the answer strings.
        fold_case: bool. Match case-insensitively: answers and vocabulary
            are lower-cased with `tf.strings.lower` (UTF-8) first, so "Red"
            is the answer "red". Vocabulary entries that differ only in case
            are then an error.

    Returns:
        an op.

    Example:

    ```python
    op = mmzoo.data.ops.answers_to_ids(mmzoo.data.VIDEO_QA_ANSWERS)
    op({"answers": "red"})["answer_ids"]  # 0
    op = mmzoo.data.ops.answers_to_ids(mmzoo.data.VIDEO_QA_ANSWERS, fold_case=True)
    op({"answers": "Red"})["answer_ids"]  # 0
    ```
    """
    vocabulary = [str(a) for a in answer_vocabulary]
    if not vocabulary or len(set(vocabulary)) != len(vocabulary):
        raise ValueError(
            "`answer_vocabulary` must be a non-empty list of distinct strings. "
            f"Received: answer_vocabulary={list(answer_vocabulary)[:10]}"
        )
    if not isinstance(fold_case, bool):
        raise ValueError(f"`fold_case` must be a bool. Received: fold_case={fold_case!r}")
    keys = vocabulary
    if fold_case:
        # TensorFlow's lower-casing, not Python's: the answers are folded by
        # it in the graph, and the two differ on a few characters.
        with tf.init_scope():
            folded = tf.strings.lower(tf.constant(vocabulary), encoding="utf-8").numpy()
        keys = [k.decode("utf-8") for k in folded]
        groups = {}
        for entry, folded_entry in zip(vocabulary, keys):
            groups.setdefault(folded_entry, []).append(entry)
        collisions = [entries for entries in groups.values() if len(entries) > 1]
        if collisions:
            raise ValueError(
                "With `fold_case=True` the answer vocabulary must stay distinct after "
                f"lower-casing; these entries collide: {collisions[:10]}. "
                f"Received: fold_case=True"
            )
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys), tf.range(len(keys), dtype=tf.int32)
        ),
        default_value=-1,
    )

    def op(example):
        answers = tf.convert_to_tensor(example[key], tf.string)
        if fold_case:
            answers = tf.strings.lower(answers, encoding="utf-8")
        return {**example, "answer_ids": table.lookup(answers)}

    return op


def keep(*keys):
    """Keeps only `keys` (in that order).

    Args:
        *keys: str.

    Returns:
        an op.

    Example:

    ```python
    dataset = dataset.map(mmzoo.data.ops.keep("images", "labels"))
    ```
    """

    def op(example):
        missing = [k for k in keys if k not in example]
        if missing:
            raise KeyError(f"Example lacks {missing}; it has {sorted(example)}")
        return {k: example[k] for k in keys}

    return op
