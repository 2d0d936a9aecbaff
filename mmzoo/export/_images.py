"""In-graph decoding of encoded image bytes for serving signatures."""

import tensorflow as tf

from mmzoo.data._images import decode_jpegs_covering
from mmzoo.data._images import scale_uint8_images


def decode_image_batch(image_bytes, image_shape):
    """Decodes a batch of JPEG / PNG / GIF / BMP strings, never failing the batch.

    Every element is decoded on its own inside a `tf.data` pipeline with
    `ignore_errors()`, so corrupt, truncated or non-image bytes drop only
    their own element: its image is zeros and its `valid` flag False.
    Grayscale and RGBA images become RGB; all are scaled to [0, 1] and
    resized to `image_shape` exactly as `mmzoo.data`'s file loaders do (a
    JPEG decoded at the DCT scale that covers the size, then area averaging
    when shrinking, antialiased bilinear when enlarging), so a served image
    is the training image to the last bit.

    Args:
        image_bytes: string tensor `(batch,)`.
        image_shape: `(height, width)` or `(height, width, 3)`.

    Returns:
        `(images float32 (batch, height, width, 3), valid bool (batch,))`.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    count = tf.shape(image_bytes)[0]

    def decode(index, data):
        image = tf.cond(
            tf.io.is_jpeg(data),
            lambda: decode_jpegs_covering([data], (width, height))[0],
            lambda: tf.io.decode_image(data, channels=3, expand_animations=False),
        )
        return index, scale_uint8_images(image, height, width)

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

