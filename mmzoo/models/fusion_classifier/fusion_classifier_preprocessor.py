"""`FusionClassifierPreprocessor`: what a fusion classifier needs around its graph."""

import keras
import numpy as np

from mmzoo import lazy_module
from mmzoo.data.inputs import as_strings
from mmzoo.data.preprocessing import ImageConverter
from mmzoo.data.preprocessing import Preprocessor

# TensorFlow is imported on first use: the models import this module and
# also run on the JAX backend, where TensorFlow may not be installed.
tf = lazy_module("tensorflow")


def _check_class_names(class_names):
    if class_names is None:
        return None
    if isinstance(class_names, (str, bytes)) or not isinstance(
        class_names, (list, tuple, np.ndarray)
    ):
        raise ValueError(
            "`class_names` must be a list of str, one per class, or None. "
            f"Received: class_names={class_names!r}"
        )
    names = list(class_names)
    if len(names) < 2 or not all(isinstance(n, str) for n in names) or (
        len(set(names)) != len(names)
    ):
        raise ValueError(
            "`class_names` must be a list of at least 2 distinct str, one per class. "
            f"Received: class_names={names!r}"
        )
    return names


@keras.saving.register_keras_serializable(package="mmzoo")
class FusionClassifierPreprocessor(Preprocessor):
    """Tokenizer, image converter and class names of a `FusionClassifier`.

    The text modality's texts are packed to `sequence_length` tokens (start,
    text, end, padding), the text encoder's own length: a model given a
    preprocessor without one sets it. Images of any size and 1, 2, 3 or 4
    channels are resized and scaled to the image encoder's `image_shape`
    (`mmzoo.data.ImageConverter`), as the data loaders do. `class_names`
    lets the model return predictions as names.

    Calling the layer on an example dict `{"images": (batch, h, w,
    channels), "texts": (batch,) strings, ...}` returns the model's inputs
    `{"images": float32 (batch, height, width, 3), "token_ids": int32
    (batch, sequence_length), "padding_mask": bool (batch,
    sequence_length), ...}`; other keys (`labels`...) are passed on
    unchanged, and a missing modality is left out. It is traceable
    (`tf.data.Dataset.map`).

    Args:
        tokenizer: `mmzoo.data.TextTokenizer`, a KerasHub tokenizer with
            start, end and padding ids (`BertTokenizer`, `CLIPTokenizer`...),
            or None for a classifier without text.
        image_converter: `mmzoo.data.ImageConverter`, an image shape
            `(height, width)` to make one, or None for a classifier without
            images.
        sequence_length: int or None. The text encoder's length (set by the
            model when None).
        class_names: list of str (one per class, in label order) or None.
        return_segment_ids: bool. Add `segment_ids` (int32 zeros: one
            segment) to the packed texts, for a BERT-style text tower; the
            model sets it when its text encoder takes `segment_ids`.
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    ```python
    preprocessor = mmzoo.models.FusionClassifierPreprocessor(
        mmzoo.data.TextTokenizer(vocabulary), image_converter=(64, 64),
        class_names=["no", "yes"])
    model = mmzoo.presets.build_from_preset(
        "fusion_classifier_tiny", encoders={...}, preprocessor=preprocessor)
    model.predict_classes(images=["photo.jpg"], texts=["is there a circle?"])
    # ["yes"]
    ```
    """

    def __init__(
        self, tokenizer=None, image_converter=None, sequence_length=None, class_names=None,
        return_segment_ids=False, **kwargs,
    ):
        if image_converter is not None and not isinstance(image_converter, ImageConverter):
            image_converter = ImageConverter(image_converter, name="image_converter")
        super().__init__(tokenizer=tokenizer, image_converter=image_converter, **kwargs)
        if sequence_length is not None:
            if isinstance(sequence_length, bool) or not isinstance(
                sequence_length, (int, np.integer)
            ) or sequence_length < 2:
                raise ValueError(
                    "`sequence_length` must be an int >= 2 (room for the start and end "
                    f"tokens) or None. Received: sequence_length={sequence_length!r}"
                )
            sequence_length = int(sequence_length)
        self.sequence_length = sequence_length
        self.class_names = _check_class_names(class_names)
        if not isinstance(return_segment_ids, (bool, np.bool_)):
            raise ValueError(
                "`return_segment_ids` must be a bool. "
                f"Received: return_segment_ids={return_segment_ids!r}"
            )
        self.return_segment_ids = bool(return_segment_ids)

    def _length(self):
        if self.sequence_length is None:
            raise ValueError(
                "This preprocessor has no `sequence_length` yet; give it to a model "
                "(`preprocessor=`), which sets its text encoder's. Received: "
                "sequence_length=None"
            )
        return self.sequence_length

    def preprocess_texts(self, texts):
        """`{"token_ids", "padding_mask"}` of `sequence_length` tokens for strings `(batch,)`.

        A text longer than `sequence_length - 2` tokens is cut (the end token
        kept); an empty text is the start and end tokens; invalid UTF-8 is
        replaced, as in the data pipelines. With `return_segment_ids`, also
        `segment_ids` (zeros). Traceable.
        """
        return self.pack_texts(texts, self._length(), self.return_segment_ids)

    def call(self, x):
        outputs = {k: v for k, v in x.items() if k not in ("images", "texts")}
        if "texts" in x:
            outputs.update(self.preprocess_texts(x["texts"]))
        if "images" in x:
            if self.image_converter is None:
                raise ValueError(
                    "This preprocessor has no image converter, so it cannot take "
                    f"`images`. Received: keys {sorted(x)}"
                )
            outputs["images"] = self.image_converter(x["images"])
        return outputs

    def preprocess_images(self, images):
        """float32 NumPy `(batch, height, width, 3)`; see `ImageConverter.convert`."""
        if self.image_converter is None:
            raise ValueError(
                "This preprocessor has no image converter; make it with "
                "`image_converter=(height, width)`. Received: image_converter=None"
            )
        return self.image_converter.convert(images)

    def tokenize_strings(self, texts, name="texts"):
        """NumPy `(token_ids, padding_mask)` for a list of strings (eager).

        `bytes` items that are not UTF-8 are read with U+FFFD replacements.
        """
        strings = as_strings(name, texts, "a list of strings")
        if strings is None:
            raise ValueError(
                f"`{name}` must be a list of strings. Received: {name} of type "
                f"{type(texts).__name__}"
            )
        self._require_tokenizer("Tokenizing texts")
        if not strings:
            length = self._length()
            return np.zeros((0, length), "int32"), np.zeros((0, length), bool)
        packed = self.preprocess_texts(tf.constant(np.asarray(strings, dtype=object), tf.string))
        return packed["token_ids"].numpy(), packed["padding_mask"].numpy()

    def class_ids_to_names(self, class_ids):
        """list of str: the name of each class id (`class_names` must be set)."""
        if self.class_names is None:
            raise ValueError(
                "This preprocessor has no `class_names`; make it with "
                "`class_names=[...]`. Received: class_names=None"
            )
        return [self.class_names[int(i)] for i in np.asarray(class_ids).reshape(-1)]

    def get_config(self):
        config = super().get_config()
        config["sequence_length"] = self.sequence_length
        config["class_names"] = self.class_names
        config["return_segment_ids"] = self.return_segment_ids
        return config
