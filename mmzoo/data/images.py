"""Decoding and resampling shared by the data pipelines, preprocessors and serving graphs.

`mmzoo.data` (training) and `mmzoo.export` (serving) both call these, so a
served model sees exactly the pixels it was trained on: the same JPEG DCT
scale, the same resampling filter, the same order of operations.
"""

from mmzoo import lazy_module

# TensorFlow is imported on first use: the models import this module and
# also run on the JAX backend, where TensorFlow may not be installed.
tf = lazy_module("tensorflow")

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

# Serving refuses an image with more pixels than this before decoding it.
# Decoding costs 3 bytes a pixel, and resizing a float copy 12 more: about
# 0.75 GB at this size. A 747 KB PNG of 16000x16000 zeros (256 megapixels)
# took a server to 4.7 GB before the limit existed.
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _read(data, offset, count, dtype, little_endian):
    values = tf.io.decode_raw(
        tf.strings.substr(data, offset, count), dtype, little_endian=little_endian
    )
    return tf.cast(values, tf.int64)


def _webp_size(data):
    chunk = tf.strings.substr(data, 12, 4)
    raw = _read(data, 0, 30, tf.uint8, True)

    def u24(offset):
        return raw[offset] + raw[offset + 1] * 256 + raw[offset + 2] * 65536

    def extended():  # "VP8X": canvas size minus one, 24 bits each.
        return 1 + u24(24), 1 + u24(27)

    def lossless():  # "VP8L": 14 bits each (minus one) after the signature byte.
        b0, b1, b2, b3 = raw[21], raw[22], raw[23], raw[24]
        width = 1 + b0 + (b1 % 64) * 256
        height = 1 + b1 // 64 + b2 * 4 + (b3 % 16) * 1024
        return width, height

    def lossy():  # "VP8 ": 14-bit sizes after the frame tag and start code.
        return (raw[26] + raw[27] * 256) % 16384, (raw[28] + raw[29] * 256) % 16384

    return tf.case(
        [(tf.equal(chunk, "VP8X"), extended), (tf.equal(chunk, "VP8L"), lossless)],
        default=lossy,
    )


def image_pixels(data):
    """int64 pixel count of an encoded image, read from its header only.

    JPEG (`tf.image.extract_jpeg_shape`), PNG (IHDR), GIF (logical screen),
    BMP (info header) and WebP (VP8 / VP8L / VP8X); 0 for anything else
    (which the decoders then reject). Nothing is decoded, so a decompression
    bomb costs only its bytes. Bytes too short for their header raise an op
    error (the caller's `ignore_errors` turns it into "undecodable").
    """
    def size_of(width_height):
        width, height = width_height[0], width_height[1]
        return tf.abs(width) * tf.abs(height)

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return shape[0] * shape[1]

    def png():
        return size_of(_read(data, 16, 8, tf.int32, False))

    def gif():
        return size_of(_read(data, 6, 4, tf.uint16, True))

    def bmp():
        return size_of(_read(data, 18, 8, tf.int32, True))

    def webp():
        return size_of(_webp_size(data))

    is_webp = tf.logical_and(
        tf.equal(tf.strings.substr(data, 0, 4), "RIFF"),
        tf.equal(tf.strings.substr(data, 8, 4), "WEBP"),
    )
    return tf.case(
        [
            (tf.io.is_jpeg(data), jpeg),
            (tf.equal(tf.strings.substr(data, 0, len(_PNG_MAGIC)), _PNG_MAGIC), png),
            (tf.equal(tf.strings.substr(data, 0, 3), "GIF"), gif),
            (tf.equal(tf.strings.substr(data, 0, 2), "BM"), bmp),
            (is_webp, webp),
        ],
        default=lambda: tf.constant(0, tf.int64),
    )


def decode_image_batch(image_bytes, image_shape, max_pixels=DEFAULT_MAX_IMAGE_PIXELS):
    """Decodes a batch of JPEG / PNG / GIF / BMP / WebP strings, never failing the batch.

    Every element is decoded on its own inside a `tf.data` pipeline with
    `ignore_errors()`, so corrupt, truncated or non-image bytes drop only
    their own element: its image is zeros and its `valid` flag False. An
    image whose header gives more than `max_pixels` pixels is not decoded at
    all: zeros, `valid` False and `too_large` True.
    Grayscale and RGBA images become RGB; all are scaled to [0, 1] and
    resized to `image_shape` exactly as `mmzoo.data`'s file loaders do (a
    JPEG decoded at the DCT scale that covers the size, then area averaging
    when shrinking, antialiased bilinear when enlarging), so a served image
    is the training image to the last bit.

    Args:
        image_bytes: string tensor `(batch,)`.
        image_shape: `(height, width)` or `(height, width, 3)`.
        max_pixels: int or None (no limit). Pixel limit (width x height).

    Returns:
        `(images float32 (batch, height, width, 3), valid bool (batch,),
        too_large bool (batch,))`.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    count = tf.shape(image_bytes)[0]
    limit = tf.constant(-1 if max_pixels is None else int(max_pixels), tf.int64)

    def decode(index, data):
        too_large = tf.logical_and(limit >= 0, image_pixels(data) > limit)

        def pixels():
            image = tf.cond(
                tf.io.is_jpeg(data),
                lambda: decode_jpegs_covering([data], (width, height))[0],
                lambda: tf.io.decode_image(data, channels=3, expand_animations=False),
            )
            return scale_uint8_images(image, height, width)

        image = tf.cond(too_large, lambda: tf.zeros((height, width, 3), tf.float32), pixels)
        return index, image, too_large

    decoded = (
        tf.data.Dataset.from_tensor_slices((tf.range(count), image_bytes))
        .map(decode)
        .ignore_errors()
    )
    # The dataset is made afresh in every call of a serving signature, and
    # tf.data's graph rewrites and autotuning ran at each one: 0.58 s per
    # call for one 320x240 JPEG, 0.09 s without them.
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    options.autotune.enabled = False
    decoded = decoded.with_options(options)

    def collect(state, element):
        images, valid, large = state
        index, image, too_large = element
        images = tf.tensor_scatter_nd_update(images, [[index]], image[None])
        valid = tf.tensor_scatter_nd_update(valid, [[index]], [tf.logical_not(too_large)])
        large = tf.tensor_scatter_nd_update(large, [[index]], [too_large])
        return images, valid, large

    initial = (
        tf.zeros((count, height, width, 3), tf.float32),
        tf.zeros((count,), tf.bool),
        tf.zeros((count,), tf.bool),
    )
    return decoded.reduce(initial, collect)


def image_status(valid, too_large, what="image"):
    """String status `(batch,)`: `ok`, `undecodable <what>` or `<what> too large`."""
    return tf.where(
        too_large,
        tf.constant(f"{what} too large"),
        tf.where(valid, tf.constant("ok"), tf.constant(f"undecodable {what}")),
    )
