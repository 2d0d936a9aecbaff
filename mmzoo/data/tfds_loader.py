"""TensorFlow Datasets image-text datasets as mmzoo example dicts."""

import tensorflow as tf

from mmzoo.data import ops
from mmzoo.data._checks import check_image_shape

# Feature names of the image-text datasets mmzoo knows; any other TFDS
# dataset works when `image_key` and `caption_key` are given.
KNOWN_TFDS_DATASETS = {
    "coco_captions": {"image_key": "image", "caption_key": "captions/text"},
}


def _feature(example, key):
    """`example[key]`, where `key` may be a path into nested features."""
    if key in example:
        return example[key]
    value = example
    for part in key.split("/"):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _to_rgb(images):
    """uint8 or float images with 1, 3 or 4 channels -> float32 RGB in [0, 1]."""
    if images.dtype.is_integer:
        images = tf.cast(images, tf.float32) / 255.0
    else:
        images = tf.cast(images, tf.float32)
    channels = images.shape[-1]
    if channels == 1:
        return tf.image.grayscale_to_rgb(images)
    if channels in (3, 4):
        return images[..., :3]
    # Unknown channel count: decide per example.
    return tf.cond(
        tf.shape(images)[-1] == 1,
        lambda: tf.image.grayscale_to_rgb(images[..., :1]),
        lambda: images[..., :3],
    )


def load_tfds(
    name,
    split="train",
    image_shape=(224, 224),
    image_key=None,
    caption_key=None,
    data_dir=None,
    download=True,
    input_context=None,
):
    """A TFDS image-text dataset as mmzoo example dicts.

    `coco_captions` (Karpathy splits: `train`, `val`, `test`, `restval`) is
    known; for any other image-text dataset give its feature names.

    Args:
        name: str. TFDS name, optionally with config/version
            (`"coco_captions/2014:1.1.0"`).
        split: str. TFDS split expression (`"train"`, `"val[:10%]"`, ...).
        image_shape: (height, width) or (height, width, 3). Images are
            resized to this size by `mmzoo.data.ops.resize`.
        image_key: str or None. Image feature; None for a known dataset.
        caption_key: str or None. Caption feature, a string or a sequence of
            strings; nested features are addressed with "/" (COCO's
            `"captions/text"`). None for a known dataset.
        data_dir: str or None. TFDS data directory.
        download: bool. Let TFDS download and prepare the data if missing.
        input_context: `tf.distribute.InputContext` or None. Reads only this
            input pipeline's share: an even part of `split`
            (`tfds.even_splits`), so each worker of a multi-worker run reads
            and decodes its own examples (what `Trainer.fit(dataset_fn)`
            passes).

    Returns:
        unbatched `tf.data.Dataset` of dicts: `images` float32 `(height,
        width, 3)` in [0, 1] and `captions` string `(num_captions,)`.

    Example:

    ```python
    examples = mmzoo.data.load_tfds("coco_captions", split="train", image_shape=(224, 224))
    train = mmzoo.data.captioning_pipeline(examples, model, batch_size=64)
    ```
    """
    import tensorflow_datasets as tfds

    height, width = check_image_shape(image_shape)
    base_name = name.split("/")[0].split(":")[0]
    known = KNOWN_TFDS_DATASETS.get(base_name, {})
    image_key = image_key or known.get("image_key")
    caption_key = caption_key or known.get("caption_key")
    if image_key is None or caption_key is None:
        raise ValueError(
            f"`{base_name}` is not one of the known datasets {sorted(KNOWN_TFDS_DATASETS)}; "
            "pass `image_key` and `caption_key` (its feature names). "
            f"Received: name={name!r}"
        )
    if input_context is not None and input_context.num_input_pipelines > 1:
        split = tfds.even_splits(split, n=input_context.num_input_pipelines)[
            input_context.input_pipeline_id
        ]
    dataset = tfds.load(name, split=split, data_dir=data_dir, download=download)
    spec = dataset.element_spec
    for arg, key in (("image_key", image_key), ("caption_key", caption_key)):
        if not isinstance(spec, dict) or _feature(spec, key) is None:
            keys = sorted(spec) if isinstance(spec, dict) else spec
            raise ValueError(
                f"`{arg}` names no feature of `{name}` (features: {keys}). "
                f"Received: {arg}={key!r}"
            )
    caption_spec = _feature(spec, caption_key)
    if caption_spec.dtype != tf.string or caption_spec.shape.rank not in (0, 1):
        raise ValueError(
            "`caption_key` must name a string or a sequence of strings. "
            f"Received: caption_key={caption_key!r} with spec {caption_spec}"
        )
    image_spec = _feature(spec, image_key)
    if image_spec.shape.rank != 3:
        raise ValueError(
            "`image_key` must name an image feature (height, width, channels). "
            f"Received: image_key={image_key!r} with spec {image_spec}"
        )
    resize = ops.resize((height, width))

    def to_example(example):
        captions = tf.reshape(_feature(example, caption_key), [-1])
        return resize({"images": _to_rgb(_feature(example, image_key)), "captions": captions})

    return dataset.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
