"""SavedModel export of an `ImageCaptioningModel`: image bytes in, captions out."""

import keras
import tensorflow as tf

from mmzoo.data.images import DEFAULT_MAX_IMAGE_PIXELS
from mmzoo.data.images import decode_image_batch
from mmzoo.data.images import image_status
from mmzoo.export._write import check_export_path
from mmzoo.export._write import check_max_pixels
from mmzoo.export._write import write_atomically

EXPORT_METHODS = ("greedy", "beam")


def export_image_captioning_model(
    model, path, method="greedy", num_beams=4, max_length=None,
    max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS, overwrite=False,
):
    """Writes a SavedModel whose `caption` signature captions encoded images.

    Everything runs in the graph: JPEG/PNG decoding (grayscale and RGBA become
    RGB), resizing to the model's image size, the image encoder, the cached
    XLA-compiled greedy or beam search, and detokenization, all with the
    model's own preprocessor (`model.preprocessor`). The SavedModel
    needs only `tensorflow` and `tensorflow_text` to load and run.

    Signature `caption`:
        input `images`: string `(batch,)`, encoded image files.
        outputs `captions`: string `(batch,)`; `token_ids`: int32
        `(batch, max_length)`; `status`: string `(batch,)`, `b"ok"`,
        `b"undecodable image"` or `b"image too large"` (more than
        `max_image_pixels` pixels by its header; it is not decoded). An
        element with another status gets an empty caption and pad tokens; the
        rest of the batch is unaffected.

    The directory is written to a temporary sibling and renamed into place, so
    an interrupted export never leaves a half-written SavedModel at `path`.
    An existing `path` is replaced only when it is an earlier mmzoo export
    (it holds `mmzoo_export.json`) or empty; anything else is refused unless
    `overwrite=True`, and a training run directory never is replaced.

    Args:
        model: `ImageCaptioningModel` with a preprocessor.
        path: str. Output directory.
        method: `"greedy"` or `"beam"` (sampling would make serving
            non-deterministic).
        num_beams: int, for `"beam"`.
        max_length: int or None (the model's `sequence_length`).
        max_image_pixels: int or None. Images with more pixels (width x
            height, read from the header) are refused with status
            `image too large`; None for no limit.
        overwrite: bool. Replace a `path` that mmzoo did not write.

    Returns:
        `path`.

    Example:

    ```python
    mmzoo.export.export_image_captioning_model(model, "captioner")
    serving = tf.saved_model.load("captioner")  # in any TF process
    out = serving.signatures["caption"](images=tf.constant([jpeg_bytes]))
    out["captions"]  # [b"a small red circle to the left of a blue square"]
    ```
    """
    if method not in EXPORT_METHODS:
        raise ValueError(
            f"`method` must be one of {list(EXPORT_METHODS)} for export. Received: method={method!r}"
        )
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None or preprocessor.tokenizer is None:
        raise ValueError(
            "The model has no preprocessor with a tokenizer, so the export could not "
            "write captions; build the model with `preprocessor=` (the "
            "`mmzoo train` runs' model.keras files carry theirs). "
            f"Received: model.preprocessor={preprocessor!r}"
        )
    check_max_pixels(max_image_pixels)
    check_export_path(path, overwrite)
    generate = model.make_generate_function(max_length, method=method, num_beams=num_beams)

    # No AutoGraph (as in Keras's train steps): the graph is written with
    # tf ops, and converting the model's source costs seconds per export.
    @tf.function(autograph=False)
    def caption(images):
        pixels, valid, too_large = decode_image_batch(images, model.image_shape, max_image_pixels)
        token_ids = generate(pixels)
        token_ids = tf.where(valid[:, None], token_ids, model.pad_token_id)
        captions = tf.where(valid, preprocessor.detokenize(token_ids), "")
        status = image_status(valid, too_large)
        return {"captions": captions, "token_ids": token_ids, "status": status}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(preprocessor)
    archive.add_endpoint(
        "caption", caption, input_signature=[tf.TensorSpec((None,), tf.string, name="images")]
    )
    return write_atomically(archive, path, "image_captioning", ["caption"], overwrite)
