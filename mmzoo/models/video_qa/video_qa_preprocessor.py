"""`VideoQAPreprocessor`: what a video QA model needs around its graph."""

import functools
import os

import keras
import numpy as np

from mmzoo import lazy_module
from mmzoo.data.inputs import as_strings
from mmzoo.data.preprocessing import Preprocessor
from mmzoo.data.preprocessing import VideoConverter
from mmzoo.data.tokenizer import TextTokenizer

# TensorFlow is imported on first use: the models import this module and
# also run on the JAX backend, where TensorFlow may not be installed.
tf = lazy_module("tensorflow")

ANSWER_MODES = ("classify", "generate")


def _check_length(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive int or None. Received: {name}={value!r}")
    return int(value)


@functools.lru_cache(maxsize=16)
def _answer_tokenizer(answer_vocabulary, sequence_length):
    # Cached by vocabulary: building tf-text's WordPiece model costs
    # milliseconds, and `answer` detokenizes on every call. Made from the
    # answer vocabulary of the config, not kept as a sublayer, so that a
    # `.keras` file holds no second copy of it as a file asset. Eagerly
    # (`init_scope`) even when first asked for inside a `tf.data` map or a
    # `tf.function`, so that the cached layer holds no graph tensors.
    with tf.init_scope():
        return TextTokenizer(
            list(answer_vocabulary), sequence_length=sequence_length, name="answer_tokenizer"
        )


def make_answer_tokenizer(answer_vocabulary, answer_sequence_length):
    """The `TextTokenizer` of generate-mode answers: the one answer rule.

    `answer_vocabulary` is the answer tokenizer's token list (mmzoo's
    reserved tokens included); answers are packed to
    `answer_sequence_length + 1` tokens (start, answer, end, padding), which
    `video_qa_training_split` cuts into the decoder's input and target.
    Training (`VideoQAPreprocessor.preprocess_answers`), `VideoQAGenerator.answer`
    and the exported SavedModel all detokenize with it.
    """
    return _answer_tokenizer(tuple(answer_vocabulary), int(answer_sequence_length) + 1)


def _one_frame_clips(videos):
    """Images as one-frame clips: `(batch, h, w, c)` or a list of images / paths / bytes."""
    if isinstance(videos, (list, tuple)):
        return [
            [item] if isinstance(item, (str, bytes, os.PathLike)) or np.ndim(item) == 3 else item
            for item in videos
        ]
    if hasattr(videos, "shape") and len(videos.shape) == 4:
        return np.asarray(videos)[:, None]
    return videos


@keras.saving.register_keras_serializable(package="mmzoo")
class VideoQAPreprocessor(Preprocessor):
    """Question tokenizer, video converter and answer rule of a `VideoQAModel`.

    The length conventions live here: questions are packed to
    `question_length` tokens (the question encoder's length; start, text,
    end, padding); in generate mode answers are packed to
    `answer_sequence_length + 1` tokens with the tokenizer made from
    `answer_vocabulary` (see `make_answer_tokenizer`). A model given a
    preprocessor sets every one of `question_length`, `answer_mode`,
    `answer_vocabulary`, `answer_sequence_length` and `video_converter` that
    is None, and refuses one that disagrees with it.

    Calling the layer on a training example (or batch) `{"videos": (...,
    num_frames, h, w, channels), "questions": strings, "answers": strings}`
    (or `"answer_ids"` instead of `"answers"`) returns `{"videos": float32
    (..., num_frames, height, width, 3), "question_token_ids",
    "question_padding_mask": (..., question_length)}` and, in classify mode,
    `"answer_ids"` int32 (the index in `answer_vocabulary`, -1 for an answer
    outside it) or, in generate mode, `"answer_token_ids"` and
    `"answer_padding_mask"` `(..., answer_sequence_length + 1)`: the
    features `mmzoo.models.video_qa_training_split` takes.

    Args:
        tokenizer: the question tokenizer: `mmzoo.data.TextTokenizer` or a
            KerasHub tokenizer with start, end and padding ids.
        video_converter: `mmzoo.data.VideoConverter`, a `(num_frames,
            image_shape)` pair to make one, or None for the model's
            `video_shape`.
        question_length: int or None. The question encoder's length.
        answer_mode: `"classify"`, `"generate"` or None (the model's).
        answer_vocabulary: list of str or None (the model's). Answers
            (classify) or answer tokens (generate).
        answer_sequence_length: int or None (the model's; generate mode).
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    ```python
    preprocessor = mmzoo.models.VideoQAPreprocessor(mmzoo.data.TextTokenizer(vocabulary))
    model = mmzoo.presets.build_from_preset(
        "video_qa_tiny", question_encoder={"vocabulary_size": len(vocabulary)},
        preprocessor=preprocessor)
    model.answer([[f"clip/{i}.png" for i in range(8)]], ["what moves left?"])  # ["circle"]
    ```
    """

    def __init__(
        self,
        tokenizer,
        video_converter=None,
        question_length=None,
        answer_mode=None,
        answer_vocabulary=None,
        answer_sequence_length=None,
        **kwargs,
    ):
        if isinstance(video_converter, (list, tuple)):
            if len(video_converter) != 2:
                raise ValueError(
                    "`video_converter` must be a `mmzoo.data.VideoConverter`, a "
                    "(num_frames, image_shape) pair or None. "
                    f"Received: video_converter={video_converter!r}"
                )
            video_converter = VideoConverter(*video_converter, name="video_converter")
        elif video_converter is not None and not isinstance(video_converter, VideoConverter):
            raise ValueError(
                "`video_converter` must be a `mmzoo.data.VideoConverter`, a "
                "(num_frames, image_shape) pair or None. "
                f"Received: video_converter={video_converter!r}"
            )
        super().__init__(tokenizer=tokenizer, video_converter=video_converter, **kwargs)
        if answer_mode is not None and answer_mode not in ANSWER_MODES:
            raise ValueError(
                f"`answer_mode` must be one of {list(ANSWER_MODES)} or None. "
                f"Received: answer_mode={answer_mode!r}"
            )
        if answer_vocabulary is not None:
            if isinstance(answer_vocabulary, str) or not hasattr(answer_vocabulary, "__iter__"):
                raise ValueError(
                    "`answer_vocabulary` must be a list of str or None. "
                    f"Received: answer_vocabulary={answer_vocabulary!r}"
                )
            answer_vocabulary = [str(a) for a in answer_vocabulary]
        self.question_length = _check_length("question_length", question_length)
        self.answer_mode = answer_mode
        self.answer_vocabulary = answer_vocabulary
        self.answer_sequence_length = _check_length(
            "answer_sequence_length", answer_sequence_length
        )

    def _require(self, name, what):
        if getattr(self, name) is None:
            raise ValueError(
                f"{what} needs `{name}`, which this preprocessor has not got yet; give it "
                f"to a model (`preprocessor=`), which sets its own. Received: {name}=None"
            )
        return getattr(self, name)

    # ----------------------------------------------------------- graph ops
    def preprocess_texts(self, questions):
        """`{"token_ids", "padding_mask"}` `S + (question_length,)` for question strings `S`.

        Questions longer than `question_length - 2` tokens are cut (keeping
        the end token); invalid UTF-8 never fails (see `mmzoo.data.tokenizer`).
        """
        return self.pack_texts(questions, self._require("question_length", "Packing questions"))

    def preprocess_answers(self, answers):
        """The answer targets for answer strings of shape `S`.

        Returns:
            classify mode: `{"answer_ids": int32 S}`, the index in
            `answer_vocabulary` (-1 for an answer outside it; the pipeline
            drops those). Generate mode: `{"answer_token_ids",
            "answer_padding_mask"}` `S + (answer_sequence_length + 1,)`.
        """
        mode = self._require("answer_mode", "Preprocessing answers")
        vocabulary = self._require("answer_vocabulary", "Preprocessing answers")
        answers = tf.convert_to_tensor(answers, tf.string)
        if mode == "classify":
            matches = tf.equal(answers[..., None], tf.constant(list(vocabulary), tf.string))
            ids = tf.argmax(tf.cast(matches, tf.int32), axis=-1, output_type=tf.int32)
            return {"answer_ids": tf.where(tf.reduce_any(matches, axis=-1), ids, -1)}
        packed = self.answer_tokenizer()(answers)
        return {
            "answer_token_ids": packed["token_ids"],
            "answer_padding_mask": packed["padding_mask"],
        }

    def detokenize_answers(self, token_ids):
        """String tensor `S` from generated answer ids `S + (length,)` (generate mode).

        Stops at `[END]`, drops `[PAD]` and `[START]`, joins WordPiece `##`
        suffixes to their word: `mmzoo.data.TextTokenizer.detokenize`.
        """
        return self.answer_tokenizer().detokenize(token_ids)

    def answer_tokenizer(self):
        """The generate-mode answer `TextTokenizer` (`make_answer_tokenizer`)."""
        if self._require("answer_mode", "The answer tokenizer") != "generate":
            raise ValueError(
                "The answer tokenizer is for answer_mode='generate'. "
                f"Received: answer_mode={self.answer_mode!r}"
            )
        return make_answer_tokenizer(
            self._require("answer_vocabulary", "The answer tokenizer"),
            self._require("answer_sequence_length", "The answer tokenizer"),
        )

    def call(self, x):
        packed = self.preprocess_texts(x["questions"])
        outputs = {
            "videos": self._require("video_converter", "Converting videos")(x["videos"]),
            "question_token_ids": packed["token_ids"],
            "question_padding_mask": packed["padding_mask"],
        }
        if "answers" in x:
            outputs.update(self.preprocess_answers(x["answers"]))
        elif "answer_ids" in x:
            outputs["answer_ids"] = tf.cast(x["answer_ids"], tf.int32)
        return outputs

    # --------------------------------------------------- eager raw inputs
    def preprocess_videos(self, videos):
        """float32 NumPy `(batch, num_frames, height, width, 3)` from what a user holds.

        Arrays of any frame size and 1-4 channels (uint8, or floats in
        [0, 1]), or lists of clips whose frames are arrays, file paths or
        encoded bytes (`mmzoo.data.VideoConverter.convert`). A one-frame
        (image QA) converter also takes images: `(batch, h, w, channels)` or
        a list of images, paths or bytes. Another frame count is refused.
        """
        converter = self._require("video_converter", "Converting videos")
        if converter.num_frames == 1:
            videos = _one_frame_clips(videos)
        shape = np.shape(videos) if hasattr(videos, "shape") else None
        if shape is not None and len(shape) == 5 and shape[1] != converter.num_frames:
            raise ValueError(
                f"`videos` must have num_frames={converter.num_frames} frames per clip "
                f"(batch, {converter.num_frames}, height, width, channels); sample or pad "
                f"the clips first. Received: videos with shape {tuple(shape)}"
            )
        return converter.convert(videos)

    def tokenize_strings(self, questions, name="questions"):
        """NumPy `(token_ids, padding_mask)` `(batch, question_length)` for question strings."""
        texts = as_strings(name, questions, "a list of question strings")
        if texts is None:
            raise ValueError(
                f"`{name}` must be a list of strings. Received: {name} of type "
                f"{type(questions).__name__}"
            )
        packed = self.preprocess_texts(tf.constant(np.asarray(texts, dtype=object), tf.string))
        return packed["token_ids"].numpy(), packed["padding_mask"].numpy()

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "question_length": self.question_length,
                "answer_mode": self.answer_mode,
                "answer_vocabulary": (
                    None if self.answer_vocabulary is None else list(self.answer_vocabulary)
                ),
                "answer_sequence_length": self.answer_sequence_length,
            }
        )
        return config
