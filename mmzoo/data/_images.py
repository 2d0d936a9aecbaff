"""Decoding and resampling shared by the data pipelines and the serving graphs.

`mmzoo.data` (training) and `mmzoo.export` (serving) both call these, so a
served model sees exactly the pixels it was trained on: the same JPEG DCT
scale, the same resampling filter, the same order of operations.
"""

import tensorflow as tf

JPEG_RATIOS = (1, 2, 4, 8)


def decode_jpegs_covering(contents, min_size):
    """uint8 `(len(contents), h, w, 3)`: JPEGs decoded at a DCT scale.

    The scale is the smallest of 1, 1/2, 1/4 or 1/8 whose output still covers
    `min_size` `(width, height)`, chosen from the first image's header (the
    images are expected to share one size, as the frames of a clip do).
    libjpeg's DCT scaling averages blocks of pixels while decoding, so it is
    much cheaper than decoding in full and resizing afterwards.

    Args:
        contents: list of scalar string tensors, JPEG bytes.
        min_size: `(width, height)`.
    """
    min_width, min_height = min_size
    # Ratio r covers a side of n pixels when ceil(n / r) >= m, i.e. when
    # n > r * (m - 1). The index of the largest such r in JPEG_RATIOS is the
    # number of ratios after 1 that satisfy it, counted in one vector op on
    # the header's (height, width, channels); -1 lets any channel count pass.
    needed = tf.constant(
        [[r * max(min_height - 1, 0), r * max(min_width - 1, 0), -1] for r in JPEG_RATIOS[1:]],
        tf.int32,
    )
    covers = tf.reduce_all(tf.image.extract_jpeg_shape(contents[0]) > needed, axis=1)
    index = tf.reduce_sum(tf.cast(covers, tf.int32))
    branches = [
        lambda ratio=ratio: tf.stack(
            [tf.io.decode_jpeg(c, channels=3, ratio=ratio) for c in contents]
        )
        for ratio in JPEG_RATIOS
    ]
    return tf.switch_case(index, branches)


def resize_images(images, height, width):
    """float32 `(..., height, width, channels)`: `images` resampled.

    * At the size already: only cast to float32.
    * Shrinking (neither side grows): area averaging, every output pixel the
      mean of the input pixels it covers (`tf.image.resize(method="area")`,
      anti-aliased by construction; OpenCV's `INTER_AREA` rule). About 8x
      cheaper than antialiased bilinear on 2x-shrunk video frames.
    * Otherwise (a side grows): bilinear with antialiasing.

    Values are neither rescaled nor clipped; the resampling is linear, and
    averaging keeps values inside their input range.

    Args:
        images: `(..., h, w, channels)` of rank >= 3, any real dtype.
        height, width: int, the output size.
    """
    images = tf.convert_to_tensor(images)
    out_shape = images.shape[:-3].concatenate([height, width, images.shape[-1]])
    if images.shape.rank is not None and tuple(images.shape[-3:-1]) == (height, width):
        return tf.cast(images, tf.float32)  # statically at the size
    # Few ops: in a tf.data map each op costs a microsecond or two per element.
    # tf.image.resize takes one image or a batch; other ranks are flattened.
    flatten = images.shape.rank not in (3, 4)
    flat = images
    if flatten:
        shape = tf.shape(images)
        # Stacked, so that the rank (4) is static even when the input's is not.
        flat = tf.reshape(images, tf.stack([-1, shape[-3], shape[-2], shape[-1]]))
    # Compared with the whole shape: 0 where a size cannot be smaller.
    grows = tf.reduce_any(tf.shape(flat) < (0,) * (flat.shape.rank - 3) + (height, width, 0))
    # Area resampling at the same size is exactly a cast to float32.
    flat = tf.cond(
        grows,
        lambda: tf.image.resize(flat, (height, width), antialias=True),
        lambda: tf.image.resize(flat, (height, width), method="area"),
    )
    if flatten:
        flat = tf.reshape(flat, tf.concat([shape[:-3], [height, width, shape[-1]]], axis=0))
    return tf.ensure_shape(flat, out_shape)


def scale_uint8_images(images, height, width):
    """float32 `(..., height, width, 3)` in [0, 1] from uint8 images or frames of any size.

    Scale to [0, 1], resample (`resize_images`), clip: what the file loaders
    do to a decoded image or a uint8 `.npy` clip, and what the serving
    signatures do to theirs.
    """
    images = resize_images(tf.cast(images, tf.float32) / 255.0, height, width)
    return tf.clip_by_value(images, 0.0, 1.0)
