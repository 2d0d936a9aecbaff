"""SavedModel export of a `DualEncoder` (image bytes and strings in, embeddings
out) or a `TwoViewEncoder` (image bytes in)."""

import keras
import tensorflow as tf

from mmzoo.data.images import DEFAULT_MAX_IMAGE_PIXELS
from mmzoo.data.images import decode_image_batch
from mmzoo.data.images import image_status
from mmzoo.export._write import check_export_path
from mmzoo.export._write import check_max_pixels
from mmzoo.export._write import write_atomically
from mmzoo.models.dual_encoder import DualEncoder
from mmzoo.models.dual_encoder import TwoViewEncoder


def export_dual_encoder(
    model, path, max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS, overwrite=False
):
    """Writes a SavedModel with `encode_images` and `encode_text` signatures.

    Everything runs in the graph: JPEG/PNG decoding (grayscale and RGBA become
    RGB) and resizing to the model's image size, or the tokenizer of the
    model's preprocessor (`model.preprocessor`) packing to the text tower's
    length, then the tower, projection and L2 normalisation. The SavedModel needs only
    `tensorflow` and `tensorflow_text` to load and run. Embeddings from the
    two signatures are comparable by dot product (cosine similarity); the
    learned `logit_scale` (and `logit_bias`) is exported as a variable-free
    constant signature `logit_scale` for SigLIP-style probabilities.

    Signature `encode_images` (image towers):
        input `images`: string `(batch,)`, encoded image files.
        outputs `embeddings`: float32 `(batch, projection_dim)`, L2-normalised;
        `status`: string `(batch,)`, `b"ok"`, `b"undecodable image"` or
        `b"image too large"` (more than `max_image_pixels` pixels by its
        header; it is not decoded). An element with another status than `ok`
        gets zeros; the rest of the batch is unaffected.
    For a video tower the input is `videos`, float32 `(batch, frames,
    height, width, 3)` in [0, 1], and the output `embeddings`.

    For a `TwoViewEncoder`, `encode_images` is the first view's tower (the
    shared one, by default), and there is no `encode_text`.

    Signature `encode_text` (`DualEncoder`):
        input `texts`: string `(batch,)`.
        output `embeddings`: float32 `(batch, projection_dim)`, L2-normalised.

    Signature `logit_scale`: no input; outputs `logit_scale` and
    `logit_bias` (0 without a learned bias), float32 scalars.

    The directory is written to a temporary sibling and renamed into place.
    An existing `path` is replaced only when it is an earlier mmzoo export
    (it holds `mmzoo_export.json`) or empty; anything else is refused unless
    `overwrite=True`, and a training run directory never is replaced.

    Args:
        model: `DualEncoder` with a preprocessor holding its tokenizer
            (`mmzoo train` runs' model.keras files carry theirs), or
            `TwoViewEncoder` (which needs none).
        path: str. Output directory.
        max_image_pixels: int or None. Images with more pixels (width x
            height, read from the header) are refused with status
            `image too large`; None for no limit.
        overwrite: bool. Replace a `path` that mmzoo did not write.

    Returns:
        `path`.

    Example:

    ```python
    mmzoo.export.export_dual_encoder(model, "clip")
    serving = tf.saved_model.load("clip")  # in any TF process
    images = serving.signatures["encode_images"](images=tf.constant([png_bytes]))
    texts = serving.signatures["encode_text"](texts=tf.constant(["a red circle"]))
    scores = tf.matmul(texts["embeddings"], images["embeddings"], transpose_b=True)
    ```
    """
    if isinstance(model, DualEncoder):
        has_text, visual_encoder, modality = True, model.image_encoder, model.image_modality
    elif isinstance(model, TwoViewEncoder):
        has_text, visual_encoder, modality = False, model.encoder, model.modality
    else:
        raise ValueError(
            "`model` must be a mmzoo DualEncoder or TwoViewEncoder. "
            f"Received: model={model!r}"
        )
    preprocessor = getattr(model, "preprocessor", None)
    if has_text and (preprocessor is None or not preprocessor.tokenizer_ready):
        raise ValueError(
            "The model has no preprocessor with a tokenizer, so the export could not "
            "write its `encode_text` signature; build the model with `preprocessor="
            "mmzoo.models.DualEncoderPreprocessor(tokenizer)` (the `mmzoo train` runs' "
            f"model.keras files carry theirs). Received: model.preprocessor={preprocessor!r}"
        )

    check_max_pixels(max_image_pixels)
    check_export_path(path, overwrite)
    archive = keras.export.ExportArchive()
    # The graph's layers rather than the model: a momentum encoder's copy of
    # the towers and its feature queue are training state, not served.
    for layer in model.layers:
        if not isinstance(layer, keras.layers.InputLayer):
            archive.track(layer)
    signatures = ["encode_images", "logit_scale"] + (["encode_text"] if has_text else [])
    image_spec = visual_encoder.inputs[0]
    # No AutoGraph (as in Keras's train steps): the graph is written with
    # tf ops, and converting the model's source costs seconds per export.
    if modality == "image":

        @tf.function(autograph=False)
        def encode_images(images):
            pixels, valid, too_large = decode_image_batch(
                images, tuple(image_spec.shape[1:3]), max_image_pixels
            )
            embeddings = model.encode_images_tensor(pixels)
            embeddings = tf.where(valid[:, None], embeddings, tf.zeros_like(embeddings))
            status = image_status(valid, too_large)
            return {"embeddings": embeddings, "status": status}

        signature = tf.TensorSpec((None,), tf.string, name="images")
    else:

        @tf.function(autograph=False)
        def encode_images(videos):
            return {"embeddings": model.encode_images_tensor(videos)}

        signature = tf.TensorSpec((None,) + tuple(image_spec.shape[1:]), tf.float32, name="videos")
    archive.add_endpoint("encode_images", encode_images, input_signature=[signature])

    if has_text:
        archive.track(preprocessor)

        @tf.function(autograph=False)
        def encode_text(texts):
            return {"embeddings": model.encode_text_tensor(preprocessor.preprocess_texts(texts))}

        archive.add_endpoint(
            "encode_text", encode_text,
            input_signature=[tf.TensorSpec((None,), tf.string, name="texts")],
        )

    @tf.function(autograph=False)
    def logit_scale():
        bias = model.head.logit_bias
        return {
            "logit_scale": tf.cast(model.head.logit_scale, tf.float32),
            "logit_bias": tf.zeros((), tf.float32) if bias is None else tf.cast(bias, tf.float32),
        }

    archive.add_endpoint("logit_scale", logit_scale, input_signature=[])
    return write_atomically(archive, path, "dual_encoder", signatures, overwrite)

