"""`DualEncoderPreprocessor`: what a dual encoder needs around its graph."""

import keras
import numpy as np

from mmzoo import lazy_module
from mmzoo.data.inputs import as_strings
from mmzoo.data.preprocessing import ImageConverter
from mmzoo.data.preprocessing import Preprocessor
from mmzoo.data.preprocessing import VideoConverter

# TensorFlow is imported on first use: the models import this module and
# also run on the JAX backend, where TensorFlow may not be installed.
tf = lazy_module("tensorflow")

# The keys `call` converts; any other key passes through unchanged.
_TEXT_KEYS = ("captions", "texts")


def _image_converter(value):
    if value is None or isinstance(value, ImageConverter):
        return value
    return ImageConverter(value, name="image_converter")


def _video_converter(value):
    if value is None or isinstance(value, VideoConverter):
        return value
    try:
        num_frames, *image_shape = value
    except (TypeError, ValueError):
        num_frames, image_shape = None, None
    if not image_shape:
        raise ValueError(
            "`video_converter` must be a `mmzoo.data.VideoConverter` or a shape "
            f"(num_frames, height, width[, 3]). Received: video_converter={value!r}"
        )
    return VideoConverter(num_frames, image_shape, name="video_converter")


@keras.saving.register_keras_serializable(package="mmzoo")
class DualEncoderPreprocessor(Preprocessor):
    """Tokenizer and image (or video) converter of a `DualEncoder` or `TwoViewEncoder`.

    The length convention lives here: texts are packed to the text tower's
    `sequence_length` (start, text, end, padding). A model given a
    preprocessor without a `sequence_length` sets its own, and one without
    an image or video converter gets one for its image tower's input shape.
    A `TwoViewEncoder` (SimCLR) has no text tower: its preprocessor has no
    tokenizer, and both views go through the one image converter.

    Calling the layer on a dict converts the keys it knows and passes the
    others through: `images` and `view_1_images`, `view_2_images` (any size,
    1 to 4 channels, uint8 or floats in [0, 1]) become float32 `(batch,
    height, width, 3)`; `videos` (and `view_*_videos`) float32 `(batch,
    num_frames, height, width, 3)`; `captions` or `texts` (strings
    `(batch,)`) become `token_ids` int32 and `padding_mask` bool `(batch,
    sequence_length)`, and `segment_ids` int32 zeros of that shape too with
    `return_segment_ids` (a BERT-style text tower). It runs in `tf.data` and
    in exported graphs.

    Args:
        tokenizer: `mmzoo.data.TextTokenizer`, a KerasHub tokenizer with
            end and padding ids and usually a start id (`BertTokenizer`,
            `CLIPTokenizer`, `GemmaTokenizer`, `SigLIPTokenizer`...), or
            None (two image views).
        image_converter: `mmzoo.data.ImageConverter`, an image shape
            `(height, width)` to make one, or None (set by the model).
        video_converter: `mmzoo.data.VideoConverter`, a shape `(num_frames,
            height, width)` to make one, or None; for a video tower.
        sequence_length: int or None. The text tower's length (set by the
            model when None).
        return_segment_ids: bool. Add `segment_ids` (zeros: one segment) to
            the packed texts; set by the model to whether its text tower
            takes them (KerasHub's `BertBackbone` does).
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    ```python
    preprocessor = mmzoo.models.DualEncoderPreprocessor(
        mmzoo.data.TextTokenizer(vocabulary), image_converter=(32, 32))
    model = mmzoo.presets.build_from_preset(
        "dual_encoder_tiny", text_encoder={"vocabulary_size": len(vocabulary)},
        preprocessor=preprocessor)
    scores = model.encode_text(["a red circle"]) @ model.encode_images(["photo.jpg"]).T
    ```
    """

    def __init__(self, tokenizer=None, image_converter=None, video_converter=None,
                 sequence_length=None, return_segment_ids=False, **kwargs):
        image_converter = _image_converter(image_converter)
        video_converter = _video_converter(video_converter)
        if image_converter is not None and video_converter is not None:
            raise ValueError(
                "A dual encoder has one image or one video tower: pass `image_converter` "
                "or `video_converter`, not both. Received: "
                f"image_converter={image_converter!r}, video_converter={video_converter!r}"
            )
        super().__init__(
            tokenizer=tokenizer, image_converter=image_converter,
            video_converter=video_converter, **kwargs,
        )
        if sequence_length is not None:
            if isinstance(sequence_length, bool) or not isinstance(
                sequence_length, (int, np.integer)
            ) or sequence_length < 2:
                raise ValueError(
                    "`sequence_length` must be an int of at least 2 (room for the start "
                    f"and end tokens) or None. Received: sequence_length={sequence_length!r}"
                )
            sequence_length = int(sequence_length)
        self.sequence_length = sequence_length
        if not isinstance(return_segment_ids, (bool, np.bool_)):
            raise ValueError(
                "`return_segment_ids` must be a bool. "
                f"Received: return_segment_ids={return_segment_ids!r}"
            )
        self.return_segment_ids = bool(return_segment_ids)

    @property
    def converter(self):
        """The `VideoConverter` or `ImageConverter`, whichever is set (or None)."""
        return self.video_converter or self.image_converter

    def preprocess_texts(self, texts):
        """`{"token_ids", "padding_mask"}` `S + (sequence_length,)` for strings
        of shape `S` (and `segment_ids` with `return_segment_ids`)."""
        if self.sequence_length is None:
            raise ValueError(
                "This preprocessor has no `sequence_length` yet; give it to a model "
                "(`preprocessor=`), which sets its text tower's. Received: "
                "sequence_length=None"
            )
        return self.pack_texts(texts, self.sequence_length, self.return_segment_ids)

    def _convert_visual(self, key, value):
        converter = self.video_converter if key.endswith("videos") else self.image_converter
        if converter is None:
            kind = "video" if key.endswith("videos") else "image"
            raise ValueError(
                f"`{key}` needs an {kind} converter; this preprocessor has none (give it "
                f"to a model, which sets one). Received: {kind}_converter=None"
            )
        return converter(value)

    def call(self, x):
        if not isinstance(x, dict):
            return self.preprocess_texts(x)
        outputs = {}
        for key, value in x.items():
            if key in _TEXT_KEYS:
                outputs.update(self.preprocess_texts(value))
            elif key.endswith("images") or key.endswith("videos"):
                outputs[key] = self._convert_visual(key, value)
            else:
                outputs[key] = value
        return outputs

    def preprocess_images(self, images, name="images"):
        """float32 NumPy `(batch, height, width, 3)` (or `(batch, num_frames,
        height, width, 3)` with a video converter) from what a user holds;
        see `mmzoo.data.ImageConverter.convert`."""
        if self.converter is None:
            raise ValueError(
                f"`{name}` needs an image or video converter; this preprocessor has none "
                "(give it to a model, which sets one)."
            )
        return self.converter.convert(images, name=name)

    def tokenize_strings(self, texts, name="texts"):
        """NumPy `(token_ids, padding_mask)` for a list of strings (eager).

        Bytes are read as UTF-8, invalid sequences replaced by U+FFFD; empty
        strings become start, end and padding; long ones are cut, keeping
        the end token.
        """
        strings = as_strings(name, texts, "a list of strings")
        if strings is None:
            raise ValueError(
                f"`{name}` must be a list of strings. Received: {name} of type "
                f"{type(texts).__name__}"
            )
        packed = self.preprocess_texts(tf.constant(np.asarray(strings, dtype=object), tf.string))
        return packed["token_ids"].numpy(), packed["padding_mask"].numpy()

    def get_config(self):
        config = super().get_config()
        config["sequence_length"] = self.sequence_length
        config["return_segment_ids"] = self.return_segment_ids
        return config
