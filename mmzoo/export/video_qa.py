"""SavedModel export of a `VideoQAModel`: frames and question strings in, answer strings out."""

import keras
import tensorflow as tf

from mmzoo.data.images import DEFAULT_MAX_IMAGE_PIXELS
from mmzoo.data.images import decode_image_batch
from mmzoo.data.images import image_status
from mmzoo.export._write import check_export_path
from mmzoo.export._write import check_max_pixels
from mmzoo.export._write import write_atomically

EXPORT_METHODS = ("greedy", "beam")


def export_video_qa_model(
    model, path, method="greedy", num_beams=4, max_length=None,
    max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS, overwrite=False,
):
    """Writes a SavedModel whose `answer` signatures answer questions about clips.

    Everything runs in the graph, with the model's own preprocessor
    (`model.preprocessor`): frame decoding or conversion, resizing to the
    model's frame size, question tokenization, the model, and the answer
    lookup (classify mode: the stored answer vocabulary) or the cached
    XLA-compiled greedy / beam decoding and detokenization by the answer
    tokenizer (generate mode). The SavedModel needs only `tensorflow` and
    `tensorflow_text` to load and run.

    Signatures (batched; pass a batch of one for a single clip):

    - `answer`: inputs `frames` uint8 `(batch, num_frames, height, width, 3)`
      (any height and width; scaled and resampled exactly as `mmzoo.data`
      reads a uint8 `.npy` clip) and `questions` string `(batch,)`.
    - `answer_encoded`: inputs `frames` string `(batch, num_frames)`, each an
      encoded JPEG / PNG / GIF / BMP frame, and `questions` string `(batch,)`.

    Both return `answers` string `(batch,)`; `answer_ids` int32 (classify:
    `(batch,)` indices into the answer vocabulary; generate: `(batch,
    max_length)` answer token ids); `status` string `(batch,)`: `b"ok"`;
    `b"frame too large"` when a frame has more than `max_image_pixels`
    pixels (for `answer`, the batch's frame size; for `answer_encoded`, any
    frame of that clip by its header, which is then not decoded); for
    `answer_encoded`, `b"undecodable frame"` when a frame of that clip cannot
    be decoded. A clip whose status is not `ok` gets an empty answer; the rest
    of the batch is unaffected. A batch whose clips have another number of frames than the
    model's `num_frames` is rejected (`InvalidArgumentError` naming the expected
    count and the received shape).
    Questions longer than the model's `question_length` tokens are
    truncated (keeping the end token), exactly as in training.

    The directory is written to a temporary sibling and renamed into place, so
    an interrupted export never leaves a half-written SavedModel at `path`.
    An existing `path` is replaced only when it is an earlier mmzoo export
    (it holds `mmzoo_export.json`) or empty; anything else is refused unless
    `overwrite=True`, and a training run directory never is replaced.

    Args:
        model: `VideoQAModel` with a preprocessor (the `.keras` files of
            `mmzoo train video_qa` runs carry theirs).
        path: str. Output directory.
        method: `"greedy"` or `"beam"`, for generate mode.
        num_beams: int, for `"beam"`.
        max_length: int or None (the model's `answer_sequence_length`), for
            generate mode.
        max_image_pixels: int or None. Frames with more pixels (width x
            height) are refused with status `frame too large`; None for no
            limit.
        overwrite: bool. Replace a `path` that mmzoo did not write.

    Returns:
        `path`.

    Example:

    ```python
    mmzoo.export.export_video_qa_model(model, "video_qa")
    serving = tf.saved_model.load("video_qa")  # in any TF process
    out = serving.signatures["answer"](
        frames=tf.constant(clip_uint8[None]),  # (1, 8, 32, 32, 3)
        questions=tf.constant(["which way does the red circle move?"]))
    out["answers"]  # [b"left"]
    ```
    """
    if method not in EXPORT_METHODS:
        raise ValueError(
            f"`method` must be one of {list(EXPORT_METHODS)} for export. "
            f"Received: method={method!r}"
        )
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None or preprocessor.tokenizer is None:
        raise ValueError(
            "The model has no preprocessor with a question tokenizer, so the export "
            "could not read question strings; build the model with `preprocessor=` "
            "(the `mmzoo train` runs' model.keras files carry theirs). "
            f"Received: model.preprocessor={preprocessor!r}"
        )
    num_frames, height, width, channels = model.video_shape
    if channels != 3:
        raise ValueError(
            f"Export takes RGB frames: the model's frames must have 3 channels. "
            f"Received: model.video_shape={model.video_shape}"
        )
    check_max_pixels(max_image_pixels)
    check_export_path(path, overwrite)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(preprocessor)

    if model.answer_mode == "classify":
        classify = model.make_classify_function()
        vocabulary = tf.constant(model.answer_vocabulary, tf.string)

        def respond(videos, token_ids, padding_mask):
            answer_ids = classify(videos, token_ids, padding_mask)
            return tf.gather(vocabulary, answer_ids), answer_ids

    else:
        generate = model.make_generate_function(max_length, method=method, num_beams=num_beams)
        archive.track(preprocessor.answer_tokenizer())

        def respond(videos, token_ids, padding_mask):
            answer_ids = generate(videos, token_ids, padding_mask)
            return preprocessor.detokenize_answers(answer_ids), answer_ids

    def check_frame_count(frames):
        # Signatures do not enforce the static frame count of their
        # TensorSpec, so say it here rather than fail in a reshape.
        return tf.debugging.Assert(
            tf.equal(tf.shape(frames)[1], num_frames),
            [
                f"`frames` must have num_frames={num_frames} frames per clip (batch, "
                "num_frames, ...); sample or pad the clips first. Received: frames with shape",
                tf.shape(frames),
            ],
            summarize=6,
        )

    def run(videos, questions, valid, too_large):
        packed = preprocessor.preprocess_texts(questions)
        answers, answer_ids = respond(videos, packed["token_ids"], packed["padding_mask"])
        answers = tf.where(valid, answers, "")
        return {
            "answers": answers, "answer_ids": answer_ids,
            "status": image_status(valid, too_large, what="frame"),
        }

    limit = -1 if max_image_pixels is None else int(max_image_pixels)

    def answer(frames, questions):
        with tf.control_dependencies([check_frame_count(frames)]):
            frames = tf.identity(frames)
        batch = tf.shape(frames)[0]
        frame_pixels = tf.cast(tf.shape(frames)[2], tf.int64) * tf.cast(tf.shape(frames)[3], tf.int64)
        too_large = tf.logical_and(limit >= 0, frame_pixels > limit)

        def scaled():
            # The converter's rule: what `model.answer` does to uint8 clips.
            return tf.reshape(
                preprocessor.video_converter(frames), (batch, num_frames, height, width, 3)
            )

        # Frames over the limit are not resampled (a float copy costs 4x).
        videos = tf.cond(
            too_large, lambda: tf.zeros((batch, num_frames, height, width, 3)), scaled
        )
        return run(
            videos, questions, tf.fill((batch,), tf.logical_not(too_large)),
            tf.fill((batch,), too_large),
        )

    def answer_encoded(frames, questions):
        with tf.control_dependencies([check_frame_count(frames)]):
            frames = tf.identity(frames)
        batch = tf.shape(frames)[0]
        images, valid, too_large = decode_image_batch(
            tf.reshape(frames, [-1]), (height, width), max_image_pixels
        )
        videos = tf.reshape(images, (batch, num_frames, height, width, 3))
        valid = tf.reduce_all(tf.reshape(valid, (batch, num_frames)), axis=1)
        too_large = tf.reduce_any(tf.reshape(too_large, (batch, num_frames)), axis=1)
        return run(videos, questions, valid, too_large)

    questions_spec = tf.TensorSpec((None,), tf.string, name="questions")
    # No AutoGraph (as in Keras's train steps): the graph is written with
    # tf ops, and converting the model's source costs seconds per export.
    archive.add_endpoint(
        "answer",
        tf.function(answer, autograph=False),
        input_signature=[
            tf.TensorSpec((None, num_frames, None, None, 3), tf.uint8, name="frames"),
            questions_spec,
        ],
    )
    archive.add_endpoint(
        "answer_encoded",
        tf.function(answer_encoded, autograph=False),
        input_signature=[
            tf.TensorSpec((None, num_frames), tf.string, name="frames"), questions_spec,
        ],
    )
    return write_atomically(
        archive, path, "video_qa", ["answer", "answer_encoded"], overwrite
    )
