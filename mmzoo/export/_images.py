"""In-graph decoding of encoded image bytes for serving signatures."""

import tensorflow as tf


def decode_image_batch(image_bytes, image_shape):
    """Decodes a batch of JPEG / PNG / GIF / BMP strings, never failing the batch.

    Every element is decoded on its own inside a `tf.data` pipeline with
    `ignore_errors()`, so corrupt, truncated or non-image bytes drop only
    their own element: its image is zeros and its `valid` flag False.
    Grayscale and RGBA images become RGB; all are resized (bilinear) to
    `image_shape` and scaled to [0, 1].

    Args:
        image_bytes: string tensor `(batch,)`.
        image_shape: `(height, width)` or `(height, width, 3)`.

    Returns:
        `(images float32 (batch, height, width, 3), valid bool (batch,))`.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    count = tf.shape(image_bytes)[0]

    def decode(index, data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), (height, width))
        return index, tf.clip_by_value(image / 255.0, 0.0, 1.0)

    decoded = (
        tf.data.Dataset.from_tensor_slices((tf.range(count), image_bytes))
        .map(decode)
        .ignore_errors()
    )

    def collect(state, element):
        images, valid = state
        index, image = element
        images = tf.tensor_scatter_nd_update(images, [[index]], image[None])
        valid = tf.tensor_scatter_nd_update(valid, [[index]], [True])
        return images, valid

    initial = (tf.zeros((count, height, width, 3), tf.float32), tf.zeros((count,), tf.bool))
    return decoded.reduce(initial, collect)
