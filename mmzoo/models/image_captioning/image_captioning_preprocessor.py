"""`ImageCaptioningPreprocessor`: what a captioner needs around its graph."""

import keras
import numpy as np

from mmzoo import lazy_module
from mmzoo.data.inputs import as_strings
from mmzoo.data.preprocessing import ImageConverter
from mmzoo.data.preprocessing import Preprocessor

# TensorFlow is imported on first use: the models import this module and
# also run on the JAX backend, where TensorFlow may not be installed.
tf = lazy_module("tensorflow")


@keras.saving.register_keras_serializable(package="mmzoo")
class ImageCaptioningPreprocessor(Preprocessor):
    """Tokenizer and image converter of an `ImageCaptioningModel`.

    The length convention lives here: captions are packed to
    `sequence_length + 1` tokens (start, text, end, padding), which
    `teacher_forcing_split` cuts into the decoder's input and target of
    `sequence_length` tokens each. `sequence_length` is the model's; a model
    given a preprocessor without one sets it.

    Calling the layer on `{"images": (batch, h, w, channels), "captions":
    (batch,) strings}` returns `{"images": float32 (batch, height, width,
    3), "token_ids": int32 (batch, sequence_length + 1), "padding_mask":
    bool (batch, sequence_length + 1)}`.

    Args:
        tokenizer: `mmzoo.data.TextTokenizer` or a KerasHub tokenizer with
            start, end and padding ids, the end and padding ids distinct
            (`BertTokenizer`, `CLIPTokenizer`, `GemmaTokenizer`...); the
            ids are read from it.
        image_converter: `mmzoo.data.ImageConverter`, or an image shape
            `(height, width)` to make one.
        sequence_length: int or None. The decoder length (set by the model
            when None).
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    ```python
    preprocessor = mmzoo.models.ImageCaptioningPreprocessor(
        mmzoo.data.TextTokenizer(vocabulary), image_converter=(32, 32))
    model = mmzoo.presets.build_from_preset(
        "image_captioning_tiny", preprocessor=preprocessor)
    model.generate(["photo.jpg"])  # ["a small red circle ..."]
    ```
    """

    def __init__(self, tokenizer, image_converter, sequence_length=None, **kwargs):
        if not isinstance(image_converter, ImageConverter):
            image_converter = ImageConverter(image_converter, name="image_converter")
        super().__init__(tokenizer=tokenizer, image_converter=image_converter, **kwargs)
        if sequence_length is not None:
            if isinstance(sequence_length, bool) or not isinstance(
                sequence_length, (int, np.integer)
            ) or sequence_length < 1:
                raise ValueError(
                    "`sequence_length` must be a positive int or None. "
                    f"Received: sequence_length={sequence_length!r}"
                )
            sequence_length = int(sequence_length)
        self.sequence_length = sequence_length

    def _length(self):
        if self.sequence_length is None:
            raise ValueError(
                "This preprocessor has no `sequence_length` yet; give it to a model "
                "(`preprocessor=`), which sets its own. Received: sequence_length=None"
            )
        return self.sequence_length + 1

    def preprocess_texts(self, captions):
        """`{"token_ids", "padding_mask"}` of `sequence_length + 1` tokens for captions `(batch,)`."""
        return self.pack_texts(captions, self._length())

    def call(self, x):
        outputs = self.preprocess_texts(x["captions"])
        outputs["images"] = self.image_converter(x["images"])
        return outputs

    def preprocess_images(self, images):
        """float32 NumPy `(batch, height, width, 3)`; see `ImageConverter.convert`."""
        return self.image_converter.convert(images)

    def tokenize_strings(self, captions, name="captions"):
        """NumPy `(token_ids, padding_mask)` for a list of caption strings (eager)."""
        texts = as_strings(name, captions, "a list of caption strings")
        if texts is None:
            raise ValueError(
                f"`{name}` must be a list of strings. Received: {name} of type "
                f"{type(captions).__name__}"
            )
        packed = self.preprocess_texts(tf.constant(np.asarray(texts, dtype=object), tf.string))
        return packed["token_ids"].numpy(), packed["padding_mask"].numpy()

    def get_config(self):
        config = super().get_config()
        config["sequence_length"] = self.sequence_length
        return config
