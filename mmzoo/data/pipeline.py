"""Batched training pipelines for the four model families.

Each function takes an unbatched dataset of example dicts (from
`load_synthetic`, `load_tfds` or the file loaders) and returns batches with
static shapes, in big_vision's order:

    shard -> [cache] -> shuffle -> repeat -> [map(per-example, parallel)]
    -> batch(drop_remainder) -> map(per batch: choose a caption, tokenize)
    -> [augment] -> prefetch

Evaluation (`repeat=False`) reads every example once, so the last partial
batch is kept: it is padded to `batch_size` by repeating its rows (static
shapes stay, for XLA) and every batch gets `example_mask`, float32
`(batch_size,)`, 1.0 for real examples and 0.0 for the padding. Weigh
losses and metrics by it (the models' split functions, such as
`mmzoo.models.classification_split`, return it as the sample weight), and
an evaluation over 500 examples in batches of 64 counts 500 examples, not
448. Padding repeats real rows rather than zeros so that no padding row can
make a NaN (an all-padding text averaged over its zero tokens) that a zero
weight would not remove (NaN * 0 is NaN). Training pipelines
(`repeat=True`) are unchanged: an endless stream of full batches, without
`example_mask`.

Text is chosen and tokenized once per batch rather than once per example:
the tensorflow-text ops are vectorised, and on this project's 2-core machine
that made the caption pipeline about 5 times faster. Examples with several
captions are batched with `Dataset.padded_batch` (images may have different
numbers of captions; the shorter caption vectors are padded with empty
strings, which are never drawn) and one caption per image is drawn from the
batch.

`cache=True` keeps the loaded examples (decoded images and raw texts) in
memory after the first pass, so later epochs skip file reading and JPEG
decoding; pass a file name to cache on disk instead. Only the per-epoch
random work (shuffling, the caption drawn, augmentation) is redone. Use it
when the decoded examples fit in memory (N x height x width x 3 x 4 bytes:
10,000 images of 64x64 take about 0.5 GB). An in-memory cache is also part
of the `tf.data` iterator's state, which `mmzoo.training.Trainer` writes into
every checkpoint: it grows with the dataset (about 416 MiB a checkpoint for
100,000 images of 32x32, against 5 MiB without a cache;
`benchmarks/resume_state.py`). A file cache keeps the checkpoint as small as
no cache. Without an in-memory cache the iterator state does not grow with
the dataset, but it holds the shuffle buffer of decoded examples: up to
`shuffle_buffer` x height x width x 3 x 4 bytes before the checkpoint
compresses it (365 MiB measured at 224px from JPEGs of noise, buffer 1,024);
lower `shuffle_buffer` to bound it, or, from TFRecord shards, shuffle the
encoded records instead (`load_tfrecords(shuffle_buffer=...)` and
`shuffle_buffer=None` here: 62 MiB in the same measurement).

Sharding happens first so that under `tf.distribute` each input pipeline
reads a disjoint part of the examples; batches then hold the per-replica
batch size (`input_context.get_per_replica_batch_size`), the form
`strategy.distribute_datasets_from_function` expects.

Augmentation is off by default. Geometric augmentation can make a caption
false: a horizontal flip turns "a red circle to the left of a blue square"
into a picture of the opposite, and a crop can cut a shape out. Use
`caption_safe_augmentation()` (brightness and contrast only: colours keep
their names) or pass your own Keras preprocessing layers knowingly.
"""

import keras
import numpy as np
import tensorflow as tf

from mmzoo.data import ops
from mmzoo.data._checks import check_int
from mmzoo.data.files import LoadReport

_RANDOM_KEY = "caption_random"
# Added to every batch of a `repeat=False` pipeline; see the module docstring.
EXAMPLE_MASK_KEY = "example_mask"


def caption_safe_augmentation(seed=None):
    """Photometric augmentation that keeps shape captions true.

    Random brightness and contrast (factor 0.1) on images in [0, 1]: colour
    names, positions and sizes do not change. No flips, crops or hue changes.

    Args:
        seed: int or None. Build a fresh one with the same seed to repeat a
            run exactly (the layers' random state advances as they run).

    Returns:
        `keras.Sequential` taking images `(batch_size, height, width, 3)`.

    Example:

    ```python
    train = mmzoo.data.captioning_pipeline(
        examples, model, batch_size=32,
        augmentation=mmzoo.data.caption_safe_augmentation(seed=0),
    )
    ```
    """
    second_seed = None if seed is None else seed + 1
    return keras.Sequential(
        [
            keras.layers.RandomBrightness(0.1, value_range=(0.0, 1.0), seed=seed),
            keras.layers.RandomContrast(0.1, value_range=(0.0, 1.0), seed=second_seed),
        ],
        name="caption_safe_augmentation",
    )


@keras.saving.register_keras_serializable(package="mmzoo")
class RandomResizedCrop(keras.layers.Layer):
    """Crops a random box of each image and resizes it (SimCLR's / Inception's crop).

    For each image, a box covering a fraction `scale` of its area, with
    aspect ratio in `ratio` (drawn log-uniformly), at a uniform position,
    is cut out and resized to `(height, width)` bilinearly. Box sides are
    clipped to the image (torchvision retries instead; the difference is in
    the rare draws of extreme ratios at large scale). Without training, the
    whole image is resized.

    Args:
        height, width: ints. Output size.
        scale: `(min, max)` fractions of the image area, in (0, 1].
        ratio: `(min, max)` aspect ratios (width / height), > 0.
        seed: int or None.

    Example:

    >>> crop = RandomResizedCrop(16, 16, seed=0)
    >>> crop(np.ones((2, 32, 32, 3), "float32"), training=True).shape
    TensorShape([2, 16, 16, 3])
    """

    def __init__(self, height, width, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.height = check_int("height", height, 1)
        self.width = check_int("width", width, 1)
        scale, ratio = tuple(scale), tuple(ratio)
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(
                f"`scale` must be (min, max) with 0 < min <= max <= 1. Received: scale={scale}"
            )
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(
                f"`ratio` must be (min, max) with 0 < min <= max. Received: ratio={ratio}"
            )
        self.scale, self.ratio, self.seed = scale, ratio, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        images = tf.convert_to_tensor(images)
        batch = tf.shape(images)[0]
        indices = tf.range(batch)
        if not training:
            boxes = tf.tile(tf.constant([[0.0, 0.0, 1.0, 1.0]]), [batch, 1])
            return tf.image.crop_and_resize(images, boxes, indices, (self.height, self.width))
        area = keras.random.uniform([batch], *self.scale, seed=self.seed_generator)
        log_ratio = keras.random.uniform(
            [batch], *np.log(self.ratio).tolist(), seed=self.seed_generator
        )
        aspect = tf.exp(log_ratio)
        # Sides as fractions of the image's sides (area and ratio are relative
        # to the image, so non-square images keep their proportions).
        box_width = tf.minimum(tf.sqrt(area * aspect), 1.0)
        box_height = tf.minimum(tf.sqrt(area / aspect), 1.0)
        corner = keras.random.uniform([batch, 2], seed=self.seed_generator)
        top = corner[:, 0] * (1.0 - box_height)
        left = corner[:, 1] * (1.0 - box_width)
        boxes = tf.stack([top, left, top + box_height, left + box_width], axis=-1)
        return tf.image.crop_and_resize(images, boxes, indices, (self.height, self.width))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width, scale=list(self.scale),
                      ratio=list(self.ratio), seed=self.seed)
        return config


def simclr_augmentation(image_size, seed=None, color_strength=0.5, crop_scale=(0.2, 1.0),
                        grayscale_rate=0.2, blur_rate=0.5):
    """SimCLR's augmentation of one view, in the graph, for images in [0, 1].

    Random resized crop (`RandomResizedCrop`), horizontal flip, colour
    jitter (brightness, contrast and saturation `0.8 * color_strength`, hue
    `0.2 * color_strength`, as in SimCLR), random grayscale and Gaussian
    blur; Keras preprocessing layers except the crop. SimCLR applies the
    jitter with probability 0.8; Keras's `RandomColorJitter` has no rate,
    so here it applies to every view. The default crop scale (0.2, 1) is
    that of small-image SimCLR / MoCo v2 setups rather than ImageNet's 0.08.

    Args:
        image_size: int or `(height, width)`: the output size.
        seed: int or None. Build a fresh one with the same seed to repeat a
            run exactly (the layers' random state advances as they run).
        color_strength: float >= 0. SimCLR's colour distortion strength `s`.
        crop_scale: `(min, max)` area fractions of the crop.
        grayscale_rate, blur_rate: floats in [0, 1], the probabilities of
            turning a view gray and of blurring it.

    Returns:
        `keras.Sequential` taking and returning images `(batch, height,
        width, 3)`.

    Example:

    ```python
    views = mmzoo.data.two_view_pipeline(
        examples, batch_size=256,
        augmentation=mmzoo.data.simclr_augmentation(32, seed=0, color_strength=1.0))
    ```
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    if isinstance(color_strength, bool) or not isinstance(color_strength, (int, float)) or (
        not color_strength >= 0
    ):
        raise ValueError(f"`color_strength` must be a float >= 0. Received: {color_strength!r}")
    for name, rate in (("grayscale_rate", grayscale_rate), ("blur_rate", blur_rate)):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise ValueError(f"`{name}` must be in [0, 1]. Received: {name}={rate!r}")
    seeds = [None] * 5 if seed is None else [check_int("seed", seed, 0) + i for i in range(5)]
    layers = [
        RandomResizedCrop(height, width, scale=crop_scale, seed=seeds[0]),
        keras.layers.RandomFlip("horizontal", seed=seeds[1]),
    ]
    if color_strength > 0:
        jitter = 0.8 * color_strength
        layers.append(keras.layers.RandomColorJitter(
            value_range=(0.0, 1.0), brightness_factor=jitter, contrast_factor=jitter,
            saturation_factor=(max(0.0, 0.5 - jitter / 2), 0.5 + jitter / 2),
            hue_factor=min(0.2 * color_strength, 0.5), seed=seeds[2],
        ))
    if grayscale_rate > 0:
        layers.append(keras.layers.RandomGrayscale(factor=grayscale_rate, seed=seeds[3]))
    if blur_rate > 0:
        # SimCLR's kernel is about a tenth of the image side, sigma in [0.1, 2]
        # (Keras draws one sigma per batch). A (rate, rate) factor is the
        # probability of blurring each image.
        kernel = max(3, (min(height, width) // 10) | 1)
        layers.append(keras.layers.RandomGaussianBlur(
            factor=(blur_rate, blur_rate), kernel_size=kernel, sigma=(0.1, 2.0),
            value_range=(0.0, 1.0),
            seed=seeds[4],
        ))
    return keras.Sequential(layers, name="simclr_augmentation")


def _validate(
    dataset, required, batch_size, shuffle_buffer, seed, input_context, augmentation, cache=False
):
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(
            f"`dataset` must be a `tf.data.Dataset`. Received: dataset={type(dataset).__name__}"
        )
    spec = dataset.element_spec
    keys = sorted(spec) if isinstance(spec, dict) else None
    missing = [k for k in required if keys is None or k not in spec]
    if missing:
        raise ValueError(
            f"`dataset` elements must be dicts with keys {list(required)}; "
            f"{missing} missing. Received: keys={keys}"
        )
    for key in ("images", "videos"):
        if key in required and not spec[key].shape.is_fully_defined():
            raise ValueError(
                f"`{key}` must have a static shape for batching and XLA; pass "
                "`image_shape` (and `num_frames`) to the loader. "
                f"Received: {key} shape={tuple(spec[key].shape)}"
            )
    check_int("batch_size", batch_size, 1)
    if shuffle_buffer is not None:
        check_int("shuffle_buffer", shuffle_buffer, 1)
    if seed is not None:
        check_int("seed", seed, 0)
    if input_context is not None:
        if not isinstance(input_context, tf.distribute.InputContext):
            raise ValueError(
                "`input_context` must be a `tf.distribute.InputContext` or None. "
                f"Received: input_context={input_context!r}"
            )
        if batch_size % input_context.num_replicas_in_sync:
            raise ValueError(
                "`batch_size` (the global batch size) must be divisible by the "
                f"{input_context.num_replicas_in_sync} replicas in sync. "
                f"Received: batch_size={batch_size}"
            )
    if augmentation is not None and not callable(augmentation):
        raise ValueError(
            "`augmentation` must be a callable (e.g. a Keras preprocessing layer) "
            f"or None. Received: augmentation={augmentation!r}"
        )
    if not (isinstance(cache, bool) or (isinstance(cache, str) and cache)):
        raise ValueError(
            "`cache` must be True (in memory), False, or a file name prefix. "
            f"Received: cache={cache!r}"
        )


def _check_in_batch_negatives(kind, batch_size, input_context):
    replicas = input_context.num_replicas_in_sync if input_context is not None else 1
    if isinstance(batch_size, int) and batch_size < 2 * replicas:
        raise ValueError(
            f"{kind} batches need at least 2 examples per replica (in-batch "
            f"negatives); {replicas} replica(s). Received: batch_size={batch_size}"
        )


def _augment(augmentation, images):
    """`augmentation(images)`; a Keras layer is called in training mode."""
    if isinstance(augmentation, keras.layers.Layer):
        return augmentation(images, training=True)
    return augmentation(images)


def _pad_batch(batch, batch_size):
    """Pads a partial batch to `batch_size` rows and adds `example_mask`.

    The padding rows repeat the batch's rows in order (see the module
    docstring); full batches pass with an all-ones mask.
    """
    first = tf.nest.flatten(batch)[0]
    if isinstance(first, tf.RaggedTensor):
        num = first.nrows(out_type=tf.int32)
    else:
        num = tf.shape(first, out_type=tf.int32)[0]
    rows = tf.range(batch_size, dtype=tf.int32)
    index = tf.math.floormod(rows, tf.maximum(num, 1))

    def pad(x):
        x = tf.gather(x, index)
        if isinstance(x, tf.RaggedTensor):
            splits = tf.ensure_shape(x.row_splits, [batch_size + 1])
            return tf.RaggedTensor.from_row_splits(x.values, splits, validate=False)
        return tf.ensure_shape(x, tf.TensorShape([batch_size]).concatenate(x.shape[1:]))

    padded = tf.nest.map_structure(pad, batch)
    return {**padded, EXAMPLE_MASK_KEY: tf.cast(rows < num, tf.float32)}


def _batch(
    dataset,
    preprocess,
    batch_size,
    shuffle_buffer,
    repeat,
    seed,
    deterministic,
    input_context,
    augmentation=None,
    random_key=None,
    keep_if=None,
    batch_preprocess=None,
    cache=False,
    padded=False,
):
    """The shared shard -> shuffle -> repeat -> map -> batch -> map -> prefetch chain.

    `preprocess` (or None) runs per example, before `keep_if`; the rest
    (`batch_preprocess`: tokenization, choosing a caption, selecting keys)
    runs once per batch, where the text ops are vectorised: tokenizing a
    batch of 64 strings at once measured about 5x the examples/s of 64
    per-example calls (`benchmarks/pipeline_vs_memory.py`). `random_key`
    adds a random int64 per example to each batch, `(batch_size,)`, drawn
    anew every epoch. `padded=True` batches with `Dataset.padded_batch`
    (`ragged_batch` when an element holds a `tf.RaggedTensor`). Without
    `repeat`, the last partial batch is padded and `example_mask` added
    (`_pad_batch`); `batch_preprocess` does not see the mask.
    """
    if deterministic and seed is None:
        seed = 0
    if input_context is not None:
        dataset = dataset.shard(
            input_context.num_input_pipelines, input_context.input_pipeline_id
        )
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    if cache:
        dataset = dataset.cache("" if cache is True else cache)
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    if preprocess is not None:
        dataset = dataset.map(
            preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
        )
    if keep_if is not None:
        dataset = dataset.filter(keep_if)
    # Training repeats, so a partial batch never comes; evaluation keeps
    # (and pads) the last one: every example counts once.
    drop_remainder = bool(repeat)
    if not padded:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    elif all(isinstance(s, tf.TensorSpec) for s in tf.nest.flatten(dataset.element_spec)):
        # One stage, where `ragged_batch` would add a map per example.
        dataset = dataset.padded_batch(batch_size, drop_remainder=drop_remainder)
    else:
        dataset = dataset.ragged_batch(batch_size, drop_remainder=drop_remainder)
    if not repeat:
        dataset = dataset.map(lambda batch: _pad_batch(batch, batch_size))
        if batch_preprocess is not None:
            preprocess_batch = batch_preprocess

            def batch_preprocess(batch):
                batch = dict(batch)
                mask = batch.pop(EXAMPLE_MASK_KEY)
                return {**preprocess_batch(batch), EXAMPLE_MASK_KEY: mask}
    if random_key is not None:
        # One random int64 per example, e.g. to pick one of several captions:
        # a seed per batch from `Dataset.random` (after `repeat`, so each
        # epoch draws anew), expanded to the batch statelessly.
        randoms = tf.data.Dataset.random(seed=seed)

        def add_randoms(batch, r):
            values = tf.random.stateless_uniform(
                [batch_size], seed=tf.stack([r, tf.constant(0, tf.int64)]), minval=None,
                maxval=None, dtype=tf.int64,
            )
            return {**batch, random_key: values}

        dataset = tf.data.Dataset.zip(dataset, randoms).map(add_randoms)
    if batch_preprocess is not None:
        dataset = dataset.map(
            batch_preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
        )
    if augmentation is not None:

        def augment(batch):
            return {**batch, "images": _augment(augmentation, batch["images"])}

        # Keras random layers keep their seed state in a variable; parallel
        # calls race on it, so a reproducible run augments one batch at a time.
        dataset = dataset.map(
            augment, num_parallel_calls=None if deterministic else tf.data.AUTOTUNE
        )
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    return dataset.with_options(options)


def _image_text_pipeline(
    dataset, preprocessor, batch_size, shuffle_buffer, repeat, seed, deterministic,
    augmentation, input_context, cache,
):
    _validate(
        dataset, ("images", "captions"), batch_size, shuffle_buffer, seed,
        input_context, augmentation, cache,
    )
    several_captions = dataset.element_spec["captions"].shape.rank == 1
    # One caption per image is drawn from the batch (padded with empty
    # strings: images may have different numbers of captions), then the
    # batch is tokenized.
    choose = ops.choose_caption() if several_captions else (lambda batch: batch)
    tokenize = ops.tokenize(preprocessor, key="captions")
    keep = ops.keep("images", "token_ids", "padding_mask")
    # A dual encoder's BERT-style text tower also takes segment ids, which
    # its preprocessor then makes.
    keep_segments = ops.keep("images", "token_ids", "padding_mask", "segment_ids")

    def batch_preprocess(batch):
        batch = tokenize(choose(batch))
        return keep_segments(batch) if "segment_ids" in batch else keep(batch)

    return _batch(
        dataset, None, batch_size, shuffle_buffer, repeat, seed, deterministic,
        input_context, augmentation=augmentation,
        random_key=_RANDOM_KEY if several_captions else None,
        batch_preprocess=batch_preprocess, cache=cache, padded=True,
    )


def captioning_pipeline(
    dataset,
    preprocessor,
    batch_size,
    shuffle_buffer=1024,
    repeat=True,
    seed=None,
    deterministic=False,
    augmentation=None,
    input_context=None,
    cache=False,
):
    """Batches of images and tokenized captions for captioning models.

    When an example has several captions (`captions` of shape `(n,)`), one of
    them is drawn at random for each example, anew every epoch.

    Args:
        dataset: unbatched `tf.data.Dataset` of dicts with `images`
            `(height, width, 3)` (static shape) and `captions` (a string or a
            vector of strings).
        preprocessor: the model (with its preprocessor), its preprocessor,
            or a `mmzoo.data.TextTokenizer` with a `sequence_length`.
        batch_size: int. Global batch size (divided among replicas when
            `input_context` is given).
        shuffle_buffer: int, or None for no shuffling (evaluation).
        repeat: bool. Repeat forever (training). False reads each example
            once (evaluation): the last partial batch is padded to
            `batch_size` and batches get `example_mask`; see the module
            docstring.
        seed: int or None. Seeds shuffling and caption choice.
        deterministic: bool. Reproducible order and choices across runs (the
            parallel map keeps its input order; augmentation runs one batch at
            a time); uses seed 0 when `seed` is None. When False, tf.data may
            reorder examples for speed. For evaluation in dataset order pass
            `shuffle_buffer=None, repeat=False, deterministic=True`.
        augmentation: None, or a callable on batched images, such as
            `caption_safe_augmentation()`; see the module docstring.
        input_context: `tf.distribute.InputContext` or None. Shards the
            examples and batches to the per-replica batch size.
        cache: bool or str. Keep the loaded examples in memory (True) or in
            files with this prefix after the first pass; see the module
            docstring.

    Returns:
        `tf.data.Dataset` of dicts: `images` float32 `(batch_size, height,
        width, 3)`, `token_ids` int32 `(batch_size, sequence_length)`,
        `padding_mask` bool `(batch_size, sequence_length)`; all shapes static.
        With `repeat=False`, also `example_mask` float32 `(batch_size,)`: 1.0
        for real examples, 0.0 for the rows padding the last batch.

    Example:

    ```python
    examples = mmzoo.data.load_synthetic("shapes_captions", split="train")
    # `model` has a preprocessor, which packs captions to its length + 1.
    train = mmzoo.data.captioning_pipeline(examples, model, batch_size=32)
    ```
    """
    return _image_text_pipeline(
        dataset, preprocessor, batch_size, shuffle_buffer, repeat, seed, deterministic,
        augmentation, input_context, cache,
    )


def contrastive_pipeline(
    dataset,
    preprocessor,
    batch_size,
    shuffle_buffer=4096,
    repeat=True,
    seed=None,
    deterministic=False,
    augmentation=None,
    input_context=None,
    cache=False,
):
    """Batches of image-text pairs for dual encoders (CLIP / SigLIP style).

    The same batches as `captioning_pipeline` (one caption drawn per image),
    with a larger default shuffle buffer and at least two examples per
    replica: in-batch negatives need a batch. Each image appears once per
    batch when each example is one image, as all mmzoo loaders produce
    (file manifests are grouped by image).

    Args:
        dataset: as in `captioning_pipeline`.
        preprocessor: the model (with its preprocessor), its preprocessor,
            or a `mmzoo.data.TextTokenizer` with a `sequence_length`.
        batch_size: int. Global batch size, at least 2 per replica.
        shuffle_buffer: int, or None for no shuffling.
        repeat: bool. Repeat forever (training). False reads each example
            once, padding the last batch and adding `example_mask`.
        seed: int or None.
        deterministic: bool. Reproducible order and choices.
        augmentation: None or a callable on batched images.
        input_context: `tf.distribute.InputContext` or None.
        cache: bool or str. Keep the loaded examples in memory (True) or in
            files with this prefix after the first pass; see the module
            docstring.

    Returns:
        `tf.data.Dataset` of dicts with `images`, `token_ids`, `padding_mask`
        (and `example_mask` with `repeat=False`) as in `captioning_pipeline`,
        and `segment_ids` int32 `(batch_size, sequence_length)` (zeros) when
        the model's text tower takes them (a BERT-style tower: its
        preprocessor has `return_segment_ids`).
        The padding rows of a last evaluation batch repeat real pairs, so a
        weighted loss drops their own terms but they still stand as
        (duplicate) negatives for the real rows: mask them out of the
        similarity matrix too, or compute retrieval metrics on the embeddings
        of the rows whose `example_mask` is 1.

    Example:

    ```python
    train = mmzoo.data.contrastive_pipeline(examples, model, batch_size=64)
    ```
    """
    _check_in_batch_negatives("Contrastive", batch_size, input_context)
    return _image_text_pipeline(
        dataset, preprocessor, batch_size, shuffle_buffer, repeat, seed, deterministic,
        augmentation, input_context, cache,
    )


def two_view_pipeline(
    dataset,
    batch_size,
    augmentation=None,
    shuffle_buffer=4096,
    repeat=True,
    seed=None,
    deterministic=False,
    input_context=None,
    cache=False,
):
    """Batches of two augmented views of each image, for SimCLR-style training.

    Each batch of images is augmented twice, independently, into
    `view_1_images` and `view_2_images`: the inputs of a
    `mmzoo.models.TwoViewEncoder` trained with `mmzoo.losses.NTXentLoss`.
    Augmentation runs in the graph after batching (other keys of the
    examples, such as captions or labels, are dropped).

    Args:
        dataset: unbatched `tf.data.Dataset` of dicts with `images`
            `(height, width, 3)` (static shape), float32 in [0, 1].
        batch_size: int. Global batch size, at least 2 per replica.
        augmentation: None for `simclr_augmentation(image size, seed=seed)`,
            or a callable (e.g. a Keras layer, called with `training=True`)
            from images `(batch, height, width, 3)` to the views' images.
            It is called twice per batch and must draw new randomness at
            each call (Keras random layers do).
        shuffle_buffer: int, or None for no shuffling.
        repeat: bool. Repeat forever (training). False reads each example
            once, padding the last batch and adding `example_mask`.
        seed: int or None. Seeds shuffling and the default augmentation.
        deterministic: bool. Reproducible order and views across runs (one
            batch augmented at a time); uses seed 0 when `seed` is None.
            With your own `augmentation`, build it with a seed too.
        input_context: `tf.distribute.InputContext` or None.
        cache: bool or str. Keep the loaded examples in memory (True) or in
            files with this prefix after the first pass.

    Returns:
        `tf.data.Dataset` of dicts: `view_1_images`, `view_2_images` float32
        `(batch_size, height, width, 3)` (the augmentation's output size),
        and `example_mask` with `repeat=False`.

    Example:

    ```python
    examples = mmzoo.data.load_synthetic("shapes_classification", "train")
    views = mmzoo.data.two_view_pipeline(examples, batch_size=128, seed=0)
    simclr = mmzoo.presets.build_from_preset("dual_encoder_simclr_tiny")
    simclr.compile(optimizer="adam", loss=mmzoo.losses.NTXentLoss(temperature=0.1))
    simclr.fit(views, steps_per_epoch=100)
    ```
    """
    _validate(dataset, ("images",), batch_size, shuffle_buffer, seed, input_context,
              augmentation, cache)
    _check_in_batch_negatives("Two-view", batch_size, input_context)
    if deterministic and seed is None:
        seed = 0
    if augmentation is None:
        augmentation = simclr_augmentation(
            tuple(dataset.element_spec["images"].shape[:2]), seed=seed
        )
    batches = _batch(
        dataset, None, batch_size, shuffle_buffer, repeat, seed, deterministic,
        input_context, batch_preprocess=ops.keep("images"), cache=cache,
    )

    def views(batch):
        images = batch.pop("images")
        first, second = _augment(augmentation, images), _augment(augmentation, images)
        return {"view_1_images": first, "view_2_images": second, **batch}

    # Keras random layers keep their seed state in a variable; parallel calls
    # race on it, so a reproducible run augments one batch at a time.
    batches = batches.map(views, num_parallel_calls=None if deterministic else tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)


def video_qa_pipeline(
    dataset,
    preprocessor,
    batch_size,
    answer_vocabulary=None,
    shuffle_buffer=1024,
    repeat=True,
    seed=None,
    deterministic=False,
    input_context=None,
    cache=False,
    fold_case=False,
    report=None,
):
    """Batches of videos, tokenized questions and answer ids.

    Examples whose answer is not in `answer_vocabulary` are dropped (the
    usual closed-vocabulary VQA practice: a classifier has no class for
    them), but not silently: the first drop of each distinct answer is
    logged as a warning on the `mmzoo.data` logger, with the vocabulary
    entry it matches but for case when there is one ("answer 'Red' is not
    in the answer vocabulary; 'red' is — pass fold_case=True"), and every
    drop is counted in `report.dropped_answers` when a `report` is given.
    Examples in the vocabulary cost no Python call. No augmentation: it
    would have to be the same for every frame of a clip, and flips change
    "left"/"right" answers.

    Args:
        dataset: unbatched `tf.data.Dataset` of dicts with `videos`
            `(num_frames, height, width, 3)` (static shape), `questions`, and
            `answer_ids` or `answers`.
        preprocessor: the model (with its preprocessor), its preprocessor
            (which packs the questions), or a `mmzoo.data.TextTokenizer`
            with a `sequence_length`.
        batch_size: int. Global batch size.
        answer_vocabulary: list of str, or None when the examples already have
            `answer_ids` (as `shapes_video_qa` does).
        shuffle_buffer: int, or None for no shuffling.
        repeat: bool. Repeat forever (training). False reads each example
            once, padding the last batch and adding `example_mask`.
        seed: int or None.
        deterministic: bool. Reproducible order.
        input_context: `tf.distribute.InputContext` or None.
        cache: bool or str. Keep the loaded examples in memory (True) or in
            files with this prefix after the first pass; see the module
            docstring.
        fold_case: bool. Match answers to `answer_vocabulary` ignoring case
            (`mmzoo.data.ops.answers_to_ids(fold_case=True)`).
        report: `mmzoo.data.LoadReport` or None, e.g. the one
            `load_video_qa_files` returned. Its `dropped_answers` dict,
            `{answer: number of examples dropped}`, is filled as the pipeline
            runs (counted in every epoch that reads them; thread-safe), and
            `report.summary()` lists them. Pass `mmzoo.data.LoadReport(name)`
            for data that came from elsewhere.

    Returns:
        `tf.data.Dataset` of dicts: `videos` float32 `(batch_size, num_frames,
        height, width, 3)`, `question_token_ids` int32 and
        `question_padding_mask` bool `(batch_size, sequence_length)`,
        `answer_ids` int32 `(batch_size,)`; with `repeat=False`, also
        `example_mask` float32 `(batch_size,)` (1.0 real, 0.0 padding).

    Example:

    ```python
    examples = mmzoo.data.load_synthetic("shapes_video_qa", split="train")
    train = mmzoo.data.video_qa_pipeline(examples, model, batch_size=16)

    examples, report = mmzoo.data.load_video_qa_files("clips/qa.jsonl")
    train = mmzoo.data.video_qa_pipeline(
        examples, model, batch_size=16,
        answer_vocabulary=["red", "green", "blue"], report=report)
    print(report.dropped_answers)  # e.g. {"Red": 3} after some steps
    ```
    """
    has_ids = isinstance(dataset, tf.data.Dataset) and "answer_ids" in (
        dataset.element_spec if isinstance(dataset.element_spec, dict) else {}
    )
    if report is not None and not isinstance(report, LoadReport):
        raise ValueError(
            "`report` must be a `mmzoo.data.LoadReport` or None. "
            f"Received: report={report!r}"
        )
    if answer_vocabulary is not None:
        to_ids = ops.answers_to_ids(answer_vocabulary, fold_case=fold_case)
        record_drops = _answer_drop_recorder(
            answer_vocabulary, fold_case,
            # Without a report the drops are still logged once each.
            report if report is not None else LoadReport("video_qa_pipeline"),
        )
    elif has_ids:
        to_ids = None
    else:
        raise ValueError(
            "The examples have no `answer_ids`; pass `answer_vocabulary` to map "
            "`answers` to ids. Received: answer_vocabulary=None"
        )
    required = ("videos", "questions") + (("answers",) if to_ids else ("answer_ids",))
    _validate(dataset, required, batch_size, shuffle_buffer, seed, input_context, None, cache)
    tokenize = ops.tokenize(preprocessor, key="questions", prefix="question_")
    keep = ops.keep("videos", "question_token_ids", "question_padding_mask", "answer_ids")

    def preprocess(example):
        if to_ids:
            example = to_ids(example)
            dropped = tf.reshape(example["answer_ids"] < 0, [-1])
            # Python runs for dropped examples only (`tf.cond`).
            recorded = tf.cond(
                tf.reduce_any(dropped),
                lambda: tf.numpy_function(
                    record_drops,
                    [tf.boolean_mask(tf.reshape(example["answers"], [-1]), dropped)],
                    tf.bool, stateful=True,
                ),
                lambda: tf.constant(True),
            )
            with tf.control_dependencies([recorded]):
                example = {**example, "answer_ids": tf.identity(example["answer_ids"])}
        return {**example, "answer_ids": tf.cast(example["answer_ids"], tf.int32)}

    def batch_preprocess(batch):
        return keep(tokenize(batch))

    return _batch(
        dataset, preprocess, batch_size, shuffle_buffer, repeat, seed, deterministic,
        input_context, keep_if=lambda example: example["answer_ids"] >= 0,
        batch_preprocess=batch_preprocess, cache=cache,
    )


def _answer_drop_recorder(answer_vocabulary, fold_case, report):
    """`record(answers)` for `tf.numpy_function`: counts each dropped answer
    in `report` (which logs the first drop of each), with a case hint."""
    # The hint only needs to be right for the usual cases, so Python's
    # lower-casing (not TensorFlow's) will do here.
    by_folded = {}
    if not fold_case:
        for entry in answer_vocabulary:
            by_folded.setdefault(str(entry).lower(), str(entry))

    def record(answers):
        for answer in np.ravel(answers):
            text = answer.decode("utf-8", errors="backslashreplace")
            match = by_folded.get(text.lower())
            hint = f"{match!r} is — pass fold_case=True" if match else None
            report.drop_answer(text, hint)
        return np.bool_(True)

    return record


def fusion_pipeline(
    dataset,
    preprocessor,
    batch_size,
    shuffle_buffer=1024,
    repeat=True,
    seed=None,
    deterministic=False,
    augmentation=None,
    input_context=None,
    cache=False,
):
    """Batches of images, tokenized texts and labels for fusion classifiers.

    Args:
        dataset: unbatched `tf.data.Dataset` of dicts with `images` (static
            shape), `texts` (string) and `labels` (int).
        preprocessor: the model (with its preprocessor), its preprocessor,
            or a `mmzoo.data.TextTokenizer` with a `sequence_length`.
        batch_size: int. Global batch size.
        shuffle_buffer: int, or None for no shuffling.
        repeat: bool. Repeat forever (training). False reads each example
            once, padding the last batch and adding `example_mask`.
        seed: int or None.
        deterministic: bool. Reproducible order.
        augmentation: None or a callable on batched images. Mind that the
            label may depend on what the augmentation changes.
        input_context: `tf.distribute.InputContext` or None.
        cache: bool or str. Keep the loaded examples in memory (True) or in
            files with this prefix after the first pass; see the module
            docstring.

    Returns:
        `tf.data.Dataset` of dicts: `images` float32 `(batch_size, height,
        width, 3)`, `token_ids` int32 and `padding_mask` bool `(batch_size,
        sequence_length)`, `labels` int32 `(batch_size,)`; `segment_ids`
        int32 `(batch_size, sequence_length)` (zeros) when the model's text
        tower takes them (BERT style); with `repeat=False`, also
        `example_mask` float32 `(batch_size,)` (1.0 real, 0.0 padding).

    Example:

    ```python
    examples = mmzoo.data.load_synthetic("shapes_classification")
    train = mmzoo.data.fusion_pipeline(examples, model, batch_size=32)
    ```
    """
    _validate(
        dataset, ("images", "texts", "labels"), batch_size, shuffle_buffer, seed,
        input_context, augmentation, cache,
    )
    tokenize = ops.tokenize(preprocessor, key="texts")
    keep = ops.keep("images", "token_ids", "padding_mask", "labels")
    # A BERT-style text tower also takes segment ids, which the model's
    # preprocessor then makes.
    keep_segments = ops.keep("images", "token_ids", "padding_mask", "segment_ids", "labels")

    def preprocess(example):
        example = tokenize(example)
        example = keep_segments(example) if "segment_ids" in example else keep(example)
        return {**example, "labels": tf.cast(example["labels"], tf.int32)}

    return _batch(
        dataset, None, batch_size, shuffle_buffer, repeat, seed, deterministic,
        input_context, augmentation=augmentation, batch_preprocess=preprocess,
        cache=cache,
    )
