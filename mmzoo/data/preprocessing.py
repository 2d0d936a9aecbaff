"""What a model carries to turn raw inputs into its tensors, and back.

Every family's preprocessor (`ImageCaptioningPreprocessor`,
`VideoQAPreprocessor`, `DualEncoderPreprocessor`,
`FusionClassifierPreprocessor`) subclasses `Preprocessor` here, which
follows KerasHub's Task + Preprocessor pattern: a serializable layer holding
the tokenizer and the image / video converter, kept by the model
(`model.preprocessor`) and saved inside its `.keras` file, the tokenizer's
vocabulary as an asset. The same layers run eagerly (a model's `generate`,
`encode_text`...), in `tf.data` (the pipelines) and in SavedModel graphs
(the exporters), so the three agree exactly.

* `ImageConverter` and `VideoConverter`: the one resize and scale rule of the
  file loaders and the serving graphs (`mmzoo.data.images`): uint8 scaled by
  1/255, area averaging when shrinking, antialiased bilinear when enlarging;
  grayscale and RGBA become RGB. Their `convert` method takes what a user
  holds: arrays of any size, image file paths or encoded bytes.
* `Preprocessor`: packing texts to a length with the tokenizer's own start,
  end and padding ids (read from the tokenizer, never assumed), and
  detokenizing generated ids. Any KerasHub tokenizer that names its special
  tokens works (`BertTokenizer`, `CLIPTokenizer`, `GemmaTokenizer`,
  `SigLIPTokenizer`...), as does mmzoo's `TextTokenizer`; every call runs
  the tokenizer's TensorFlow path, the one `tf.data` and SavedModels run.
"""

import functools
import os

import keras
import keras_hub
import numpy as np

from mmzoo import lazy_module
from mmzoo.data._checks import check_int
from mmzoo.data.images import DEFAULT_MAX_IMAGE_PIXELS
from mmzoo.data.images import decode_image_batch
from mmzoo.data.images import resize_images
from mmzoo.data.images import scale_uint8_images
from mmzoo.data.inputs import describe
from mmzoo.data.inputs import pixel_array
from mmzoo.data.inputs import unit_float_pixels

# TensorFlow is imported on first use: the models import this module and
# also run on the JAX backend, where TensorFlow may not be installed.
tf = lazy_module("tensorflow")

# Registers `TextTokenizer` for `.keras` loading: a file that holds a
# preprocessor names it, and loading a model imports only this module.
from mmzoo.data.tokenizer import TextTokenizer  # noqa: F401,E402  isort: skip


def _check_image_shape(image_shape):
    try:
        shape = tuple(int(size) for size in image_shape)
    except (TypeError, ValueError):
        shape = None
    if shape is None or len(shape) not in (2, 3) or min(shape) < 1 or (
        len(shape) == 3 and shape[2] != 3
    ):
        raise ValueError(
            "`image_shape` must be (height, width) or (height, width, 3) of positive "
            f"ints. Received: image_shape={image_shape!r}"
        )
    return shape[:2] + (3,)


def _to_rgb(images):
    """RGB `(..., h, w, 3)` from 1 (gray), 2 (gray + alpha), 3 or 4 (RGBA) channels."""
    channels = images.shape[-1]
    if channels == 3:
        return images
    if channels in (1, 2):
        return tf.repeat(images[..., :1], 3, axis=-1)
    if channels == 4:
        return images[..., :3]
    raise ValueError(
        "Images must have 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) channels. "
        f"Received: images with shape {tuple(images.shape)}"
    )


def _read_image_file(name, path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as error:
        raise ValueError(
            f"`{name}` names an image file that cannot be read ({error.strerror}). "
            f"Received: {name}={os.fspath(path)!r}"
        ) from None


@keras.saving.register_keras_serializable(package="mmzoo")
class ImageConverter(keras.layers.Layer):
    """Resizes and scales images to a model's `image_shape`, as training did.

    Calling the layer on a tensor of images `(..., h, w, channels)` of any
    size returns float32 `(..., height, width, 3)` in [0, 1]: uint8 is
    scaled by 1/255, floats are taken to be in [0, 1] (and clipped), 1, 2 or
    4 channels become RGB, and the resampling is that of `mmzoo.data`'s file
    loaders (area averaging when shrinking, antialiased bilinear when
    enlarging). A string tensor `(batch,)` of encoded JPEG / PNG / GIF / BMP /
    WebP files is decoded first, as the SavedModel signatures decode theirs.
    Traceable: it runs in `tf.data` and in exported graphs.

    `convert` is the eager entry point for what users hold (arrays, file
    paths, bytes), with every input checked.

    Args:
        image_shape: `(height, width)` or `(height, width, 3)`.
        max_image_pixels: int or None. Encoded images whose header gives more
            pixels are refused before decoding; None for no limit.
        **kwargs: `keras.layers.Layer` arguments (e.g. `name`).

    Example:

    ```python
    converter = mmzoo.data.ImageConverter((32, 32))
    converter.convert(["cat.jpg", png_bytes, uint8_array_of_any_size])
    # float32 array (3, 32, 32, 3) in [0, 1]
    ```
    """

    def __init__(self, image_shape, max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS, **kwargs):
        super().__init__(**kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.image_shape = _check_image_shape(image_shape)
        if max_image_pixels is not None and (
            isinstance(max_image_pixels, bool)
            or not isinstance(max_image_pixels, (int, np.integer))
            or max_image_pixels < 1
        ):
            raise ValueError(
                "`max_image_pixels` must be a positive int or None. "
                f"Received: max_image_pixels={max_image_pixels!r}"
            )
        self.max_image_pixels = None if max_image_pixels is None else int(max_image_pixels)
        self.built = True

    def call(self, images):
        images = tf.convert_to_tensor(images)
        height, width = self.image_shape[:2]
        if images.dtype == tf.string:
            pixels, _, _ = decode_image_batch(images, self.image_shape, self.max_image_pixels)
            return pixels
        images = _to_rgb(images)
        if images.dtype == tf.uint8:
            return scale_uint8_images(images, height, width)
        return tf.clip_by_value(resize_images(tf.cast(images, tf.float32), height, width), 0.0, 1.0)

    def decode(self, image_bytes):
        """`(images, valid, too_large)` for a string tensor `(batch,)` of encoded files.

        An undecodable element, or one over `max_image_pixels`, gets zeros
        and `valid` False instead of failing the batch (the serving rule).
        """
        return decode_image_batch(image_bytes, self.image_shape, self.max_image_pixels)

    def convert(self, images, name="images"):
        """float32 NumPy `(batch, height, width, 3)` from what a user holds.

        Args:
            images: one of
                * an array `(batch, h, w, channels)` (uint8, or floats in
                  [0, 1]) of any size and 1, 2, 3 or 4 channels;
                * a list whose items are arrays `(h, w, channels)` (sizes may
                  differ), image file paths (str or `os.PathLike`) or encoded
                  image bytes, mixed freely.
            name: str. The argument name used in error messages.

        Returns:
            float32 `(batch, height, width, 3)` in [0, 1]. NaN, inf, floats
            outside [0, 1] (by more than 1/255), unreadable files,
            undecodable bytes and images over `max_image_pixels` are refused
            with an error naming the item.
        """
        if isinstance(images, (str, bytes, os.PathLike)):
            raise ValueError(
                f"`{name}` must be a batch: a list of images, paths or bytes, or an array "
                f"(batch, height, width, channels). Received: {name}={images!r:.80}"
            )
        if isinstance(images, (list, tuple)):
            if not images:
                return np.zeros((0,) + self.image_shape, "float32")
            if any(isinstance(item, (str, bytes, os.PathLike)) for item in images) or len(
                {np.shape(item) for item in images}
            ) > 1:
                return self._convert_items(name, images)
        array = pixel_array(name, images)
        if array.ndim != 4:
            raise ValueError(
                f"`{name}` must have shape (batch, height, width, channels). "
                f"Received: {name} with shape {array.shape}"
            )
        if array.shape[0] == 0:
            return np.zeros((0,) + self.image_shape, "float32")
        if array.dtype != np.uint8:
            array = unit_float_pixels(name, array)
        return keras.ops.convert_to_numpy(self(array))

    def _convert_items(self, name, items):
        """A list of arrays, paths and bytes; the encoded ones decoded in one call
        (a call costs a fraction of a second, however few images it holds)."""
        items = [
            _read_image_file(f"{name}[{i}]", item) if isinstance(item, (str, os.PathLike)) else item
            for i, item in enumerate(items)
        ]
        encoded = [i for i, item in enumerate(items) if isinstance(item, bytes)]
        converted = [None] * len(items)
        if encoded:
            pixels, valid, too_large = (
                np.asarray(t) for t in self.decode(tf.constant([items[i] for i in encoded]))
            )
            for row, i in enumerate(encoded):
                if too_large[row]:
                    raise ValueError(
                        f"`{name}[{i}]` is an image of more than max_image_pixels="
                        f"{self.max_image_pixels} pixels (by its header); it was not decoded."
                    )
                if not valid[row]:
                    raise ValueError(
                        f"`{name}[{i}]` is not a decodable JPEG, PNG, GIF, BMP or WebP image. "
                        f"Received: {len(items[i])} bytes starting {items[i][:8]!r}"
                    )
                converted[i] = pixels[row]
        for i, item in enumerate(items):
            if converted[i] is not None:
                continue
            array = pixel_array(f"{name}[{i}]", item)
            if array.ndim != 3:
                raise ValueError(
                    f"`{name}[{i}]` must be an image (height, width, channels), a file path "
                    f"or encoded bytes. Received: {name}[{i}] as {describe(item)}"
                )
            converted[i] = self.convert(array[None], name=f"{name}[{i}]")[0]
        return np.stack(converted)

    def compute_output_shape(self, input_shape):
        if len(input_shape) == 1:  # encoded images
            return tuple(input_shape) + self.image_shape
        return tuple(input_shape[:-3]) + self.image_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"image_shape": list(self.image_shape), "max_image_pixels": self.max_image_pixels}
        )
        return config


@keras.saving.register_keras_serializable(package="mmzoo")
class VideoConverter(keras.layers.Layer):
    """Resizes and scales clips to `(num_frames,) + image_shape`, frame by frame.

    The per-frame rule is `ImageConverter`'s. Calling it on a tensor
    `(..., num_frames, h, w, channels)` returns float32 `(..., num_frames,
    height, width, 3)` in [0, 1]; another frame count is refused.

    Args:
        num_frames: int.
        image_shape: `(height, width)` or `(height, width, 3)`, of a frame.
        max_image_pixels: int or None, per encoded frame.
        **kwargs: `keras.layers.Layer` arguments.

    Example:

    ```python
    converter = mmzoo.data.VideoConverter(8, (32, 32))
    converter.convert([[f"clip0/{i}.jpg" for i in range(8)], uint8_clip])
    # float32 (2, 8, 32, 32, 3)
    ```
    """

    def __init__(self, num_frames, image_shape, max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS,
                 **kwargs):
        super().__init__(**kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or (
            num_frames < 1
        ):
            raise ValueError(f"`num_frames` must be a positive int. Received: num_frames={num_frames!r}")
        self.num_frames = int(num_frames)
        self.frame_converter = ImageConverter(
            image_shape, max_image_pixels, dtype=self.dtype_policy, name="frame_converter"
        )
        self.image_shape = self.frame_converter.image_shape
        self.max_image_pixels = self.frame_converter.max_image_pixels
        self.built = True

    def call(self, videos):
        videos = tf.convert_to_tensor(videos)
        if videos.shape.rank is not None and videos.shape.rank >= 4 and (
            videos.shape[-4] not in (None, self.num_frames)
        ):
            raise ValueError(
                f"Videos must have num_frames={self.num_frames} frames. "
                f"Received: videos with shape {tuple(videos.shape)}"
            )
        return self.frame_converter(videos)

    def convert(self, videos, name="videos"):
        """float32 NumPy `(batch, num_frames, height, width, 3)` from what a user holds.

        Args:
            videos: an array `(batch, num_frames, h, w, channels)` (uint8 or
                floats in [0, 1], any frame size), or a list of clips, each an
                array `(num_frames, h, w, channels)` or a list of
                `num_frames` frames given as arrays, file paths or bytes.
            name: str, for error messages.
        """
        if isinstance(videos, (str, bytes, os.PathLike)):
            raise ValueError(
                f"`{name}` must be a batch of clips. Received: {name}={videos!r:.80}"
            )
        if isinstance(videos, (list, tuple)):
            if not videos:
                return np.zeros((0, self.num_frames) + self.image_shape, "float32")
            return np.stack([self._convert_clip(f"{name}[{i}]", v) for i, v in enumerate(videos)])
        array = pixel_array(name, videos)
        if array.ndim != 5 or array.shape[1] != self.num_frames:
            raise ValueError(
                f"`{name}` must have shape (batch, {self.num_frames}, height, width, "
                f"channels). Received: {name} with shape {array.shape}"
            )
        if array.shape[0] == 0:
            return np.zeros((0, self.num_frames) + self.image_shape, "float32")
        if array.dtype != np.uint8:
            array = unit_float_pixels(name, array)
        return keras.ops.convert_to_numpy(self(array))

    def _convert_clip(self, name, clip):
        if isinstance(clip, (list, tuple)):
            if len(clip) != self.num_frames:
                raise ValueError(
                    f"`{name}` must hold num_frames={self.num_frames} frames. "
                    f"Received: {len(clip)} frames"
                )
            return self.frame_converter.convert(list(clip), name=name)
        return self.convert(pixel_array(name, clip)[None], name=name)[0]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-3]) + self.image_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_frames": self.num_frames,
                "image_shape": list(self.image_shape),
                "max_image_pixels": self.max_image_pixels,
            }
        )
        return config


def special_token_ids(tokenizer):
    """`(start, end, pad)` token ids, read from the tokenizer.

    mmzoo's `TextTokenizer` and KerasHub's model tokenizers name them
    `start_token_id` / `end_token_id` / `pad_token_id` (CLIP, Gemma ...) or,
    BERT style, `cls_token_id` / `sep_token_id` / `pad_token_id`. A
    tokenizer with an end and a padding token but no start token (SigLIP's
    `</s>` ends and pads) gives `start` None: texts are packed without one.
    Nothing is assumed: a tokenizer without end and padding ids is refused,
    naming what is missing. The end and padding ids may be the same (CLIP
    with `pad_with_end_token=True`, SigLIP): padding masks come from the
    packing, never from comparing ids.
    """
    pad = getattr(tokenizer, "pad_token_id", None)
    for start_name, end_name in (("start_token_id", "end_token_id"), ("cls_token_id", "sep_token_id")):
        start, end = getattr(tokenizer, start_name, None), getattr(tokenizer, end_name, None)
        if start is not None and end is not None and pad is not None:
            return int(start), int(end), int(pad)
    end = getattr(tokenizer, "end_token_id", None)
    if end is not None and pad is not None and getattr(tokenizer, "cls_token_id", None) is None:
        return None, int(end), int(pad)
    raise ValueError(
        "The tokenizer must define its special token ids: `start_token_id`, "
        "`end_token_id` and `pad_token_id` (or BERT's `cls_token_id`, `sep_token_id` "
        "and `pad_token_id`; the start token may be missing), as mmzoo's "
        "TextTokenizer and KerasHub's model tokenizers (BertTokenizer, CLIPTokenizer, "
        "GemmaTokenizer, SigLIPTokenizer...) do. Received: "
        f"{type(tokenizer).__name__} with start={getattr(tokenizer, 'start_token_id', None)}, "
        f"end={getattr(tokenizer, 'end_token_id', None)}, pad={pad}"
    )


def _ragged_ids(pieces):
    if isinstance(pieces, list):  # KerasHub turns eager ragged outputs into lists
        pieces = tf.ragged.constant(pieces, dtype=tf.int32, ragged_rank=1)
    if isinstance(pieces, tf.RaggedTensor):
        return tf.cast(pieces, tf.int32)
    return tf.RaggedTensor.from_tensor(tf.cast(pieces, tf.int32))


def _refresh_sentence_piece(tokenizer):
    """Makes a SentencePiece tokenizer's TensorFlow op again if it was lost.

    tensorflow-text's SentencePiece model is a resource owned by an eager
    kernel, and `tf.random.set_seed` (so `keras.utils.set_random_seed`)
    clears the kernel cache: a tokenizer made before a seed is set then
    fails with "Resource .../SentencepieceOp... does not exist"
    (tensorflow/text#570). Checked, and remade from the tokenizer's proto,
    before each use; a `tf.data` pipeline traced before the seed was set
    still holds the lost one.
    """
    if not isinstance(tokenizer, keras_hub.tokenizers.SentencePieceTokenizer) or (
        tokenizer.proto is None
    ):
        return
    with tf.init_scope():
        sentence_piece = getattr(tokenizer, "_sentence_piece", None)
        if sentence_piece is not None:
            try:
                sentence_piece.vocab_size()
                return
            except tf.errors.NotFoundError:
                pass
        tokenizer._set_proto_tf(tokenizer.proto)


def _lowercases(tokenizer):
    """Whether texts are lower-cased before `tokenizer` sees them.

    KerasHub's `CLIPPreprocessor` lower-cases (`to_lower=True`), and so does
    `CLIPTokenizer`'s pure-Python path, but not its TensorFlow path (the
    one `tf.data` and SavedModels run): done here, both paths agree with
    the preprocessor CLIP vocabularies are made for. MetaCLIP 2's
    preprocessor lower-cases too (`to_lower=True`).
    """
    return isinstance(
        tokenizer, (keras_hub.tokenizers.CLIPTokenizer, keras_hub.models.MetaCLIP2Tokenizer)
    )


# The punctuation KerasHub's `SigLIPPreprocessor` removes (big_vision's
# prompt canonicalisation).
_SIGLIP_PUNCTUATION = (
    r"!|\"|#|\$|%|&|\\|'|\(|\)|\*|\+|,|-|\.|/|:|;|<|=|>|\?|@|\[|\\|"
    r"\]|\^|_|`|{|\||}|~"
)


def _canonicalizes(tokenizer):
    """Whether texts are canonicalised before `tokenizer` sees them.

    KerasHub's `SigLIPPreprocessor` (`canonicalize_text=True`, its default)
    lower-cases ASCII letters, removes punctuation and collapses and strips
    whitespace, as big_vision does for SigLIP's prompts; done here the same
    way, so that mmzoo's token ids are the ones SigLIP towers were trained on.
    """
    return isinstance(tokenizer, keras_hub.tokenizers.SigLIPTokenizer)


def _canonicalize(texts):
    texts = tf.strings.lower(texts)
    texts = tf.strings.regex_replace(texts, _SIGLIP_PUNCTUATION, "")
    return tf.strings.strip(tf.strings.regex_replace(texts, r"\s+", " "))


def _keeps_word_ends(tokenizer):
    """Whether `tokenizer` is a CLIP-style BPE tokenizer (`</w>` ends words)."""
    vocabulary = getattr(tokenizer, "vocabulary", None)
    return (
        isinstance(tokenizer, keras_hub.tokenizers.BytePairTokenizer)
        and isinstance(vocabulary, dict)
        and getattr(tokenizer, "id_to_token_map", None) is not None
        and getattr(tokenizer, "unicode2byte", None) is not None
        and any(token.endswith("</w>") for token in vocabulary)
    )


# The character byte-level BPE writes for a space (GPT-2's byte table maps
# the bytes 0..32, which do not print, to U+0100..U+0120).
_BYTE_LEVEL_SPACE = chr(256 + ord(" "))


def _detokenize_words(tokenizer, token_ids):
    """CLIP's detokenization, with the spaces between words.

    KerasHub's `CLIPTokenizer.detokenize` (0.32) drops them: its TensorFlow
    path turns `</w>` into a space, which its byte-level table then maps to
    nothing (its Python path removes `</w>`). Here `</w>` becomes the
    byte-level character of a space, which the table maps to one. The
    tokenizer's own tables, and only TensorFlow ops: the bytes of a
    character split over tokens are joined again, eagerly too.
    """
    table = tokenizer.id_to_token_map
    tokens = table.lookup(tf.cast(token_ids, table.key_dtype))
    texts = tf.strings.reduce_join(tokens, axis=-1)
    texts = tf.strings.regex_replace(texts, "</w>", _BYTE_LEVEL_SPACE)
    texts = tf.strings.reduce_join(
        tokenizer.unicode2byte.lookup(tf.strings.unicode_split(texts, "UTF-8")), axis=-1
    )
    return tf.strings.strip(texts)


@keras.saving.register_keras_serializable(package="mmzoo")
class Preprocessor(keras_hub.models.Preprocessor):
    """Base of the family preprocessors: text packing and detokenizing.

    Holds a `tokenizer` (mmzoo's `TextTokenizer` or a KerasHub tokenizer that
    defines its special token ids) and optionally an `image_converter` or
    `video_converter`. Subclasses define `call` for the training batches and
    the family's raw-input methods.

    Inside a `.keras` file the tokenizer's vocabulary is an asset (KerasHub
    tokenizers' and mmzoo's `TextTokenizer`'s), and the config records its
    size (`vocabulary_size`): loading fails, naming both sizes, when the
    asset does not hold that many tokens, and fails when the asset is
    missing, rather than at the tokenizer's first use.

    Args:
        tokenizer: tokenizer or None.
        image_converter: `ImageConverter` or None.
        video_converter: `VideoConverter` or None.
        vocabulary_size: int or None. Only for configs read from a `.keras`
            file: the number of tokens the tokenizer's vocabulary asset must
            hold. A tokenizer that has its vocabulary must have this size.
        **kwargs: `keras.layers.Layer` arguments.
    """

    def __init__(self, tokenizer=None, image_converter=None, video_converter=None,
                 vocabulary_size=None, **kwargs):
        super().__init__(**kwargs)
        if hasattr(tokenizer, "_allow_python_workflow"):
            # KerasHub tokenizers run a pure-Python path eagerly and their
            # TensorFlow path in `tf.data` and SavedModels, and the two can
            # disagree (CLIP's Python path lower-cases, its TF path does
            # not). Eager calls take the TF path too, as mmzoo's
            # TextTokenizer does, so that `generate` / `encode_text`, the
            # pipelines and the exports tokenize alike. Not in the
            # tokenizer's config: set again whenever a preprocessor is made.
            tokenizer._allow_python_workflow = False
        self.tokenizer = tokenizer
        self.image_converter = image_converter
        self.video_converter = video_converter
        self._declared_vocabulary_size = _check_vocabulary_size(tokenizer, vocabulary_size)
        # Set while a file is loaded: whether Keras opened the file's assets
        # (None before any load), and the first error of the tokenizer's.
        self._assets_opened = None
        self._vocabulary_error = None
        if self.tokenizer_ready:
            special_token_ids(tokenizer)  # refuses a tokenizer without them, now
            size = self.vocabulary_size
            if vocabulary_size is not None and size != vocabulary_size:
                raise ValueError(
                    "`vocabulary_size` must be the tokenizer's: it has "
                    f"{size} tokens. Received: vocabulary_size={vocabulary_size}"
                )
        elif hasattr(tokenizer, "load_assets"):
            self._check_tokenizer_on_load()
        self.built = True

    @property
    def tokenizer_ready(self):
        """bool. Whether the tokenizer has its vocabulary (a config read from a
        `.keras` file gets it from the file's assets, after construction)."""
        if self.tokenizer is None:
            return False
        for attribute in ("vocabulary", "proto"):  # WordPiece / BytePair, SentencePiece
            if hasattr(self.tokenizer, attribute):
                return getattr(self.tokenizer, attribute) is not None
        return True

    def _special_id(self, index):
        if not self.tokenizer_ready:
            return None
        return special_token_ids(self.tokenizer)[index]

    @property
    def start_token_id(self):
        """int or None. The tokenizer's start token (BERT's `[CLS]`; None for a
        tokenizer without one, such as SigLIP's)."""
        return self._special_id(0)

    @property
    def end_token_id(self):
        """int or None. The tokenizer's end token (BERT's `[SEP]`)."""
        return self._special_id(1)

    @property
    def pad_token_id(self):
        """int or None. The tokenizer's padding token."""
        return self._special_id(2)

    @property
    def vocabulary_size(self):
        """int or None. The tokenizer's vocabulary size."""
        if self.tokenizer is None:
            return None
        if not self.tokenizer_ready:
            # Read from a config: the size it records (a TextTokenizer's own
            # first, which the model compares with its embedding).
            declared = getattr(self.tokenizer, "_declared_vocabulary_size", None)
            return self._declared_vocabulary_size if declared is None else declared
        size = self.tokenizer.vocabulary_size  # a method on KerasHub tokenizers
        size = size() if callable(size) else size
        return None if size is None else int(size)

    # === Loading from a `.keras` file ===
    # Keras (saving_lib) calls an object's `load_own_variables`, then its
    # `load_assets` (only when the file holds assets: an archive of at most
    # three files, config, metadata and weights, opens none), then visits
    # its children: this preprocessor before its tokenizer, and nothing of
    # the preprocessor's after the tokenizer. So the tokenizer's two hooks
    # are wrapped, to check its vocabulary once it has read it, or to find
    # that no asset will come. A KerasHub tokenizer's config records no
    # size, and Keras does not fail a load whose assets are missing: both
    # are caught here, at load, not at the tokenizer's first use.
    def _check_tokenizer_on_load(self):
        """Wraps the loading hooks of the tokenizer, which waits for its assets."""
        tokenizer = self.tokenizer
        for hook, check in (
            ("load_own_variables", self._load_tokenizer_variables),
            ("load_assets", self._load_tokenizer_assets),
        ):
            # Set past Keras's attribute tracking: a plain function, not state.
            object.__setattr__(tokenizer, hook, functools.partial(check, getattr(tokenizer, hook)))

    def load_own_variables(self, store):
        super().load_own_variables(store)
        self._assets_opened = False

    def load_assets(self, dir_path):
        # Called only when the file holds assets, and before the tokenizer's
        # hooks: what `_load_tokenizer_variables` relies on.
        del dir_path  # the tokenizer reads its own
        self._assets_opened = True

    def _load_tokenizer_variables(self, load_own_variables, store):
        load_own_variables(store)
        if self._assets_opened is False and not self.tokenizer_ready:
            raise self._vocabulary_failure(self._missing_vocabulary())

    def _load_tokenizer_assets(self, load_assets, dir_path):
        # Keras visits the tokenizer once per attribute path that reaches it
        # (`tokenizer`, then KerasHub's `_tokenizer`), passing None where that
        # path holds no assets, and retries a failed visit: the first error
        # is kept and raised again, so that the retry does not mask it.
        if dir_path is None or not os.listdir(dir_path):
            if self.tokenizer_ready and self._vocabulary_error is None:
                return
            raise self._vocabulary_failure(self._missing_vocabulary())
        try:
            load_assets(dir_path)
        except ValueError as error:
            raise self._vocabulary_failure(error)
        except OSError as error:  # one of its files is missing
            raise self._vocabulary_failure(ValueError(
                f"The vocabulary asset of the tokenizer {self.tokenizer.name!r} in the "
                f"saved file cannot be read ({error}); {self._declared()}."
            )) from error
        size, declared = self.vocabulary_size, self._declared_vocabulary_size
        if declared is not None and size != declared:
            raise self._vocabulary_failure(ValueError(
                f"The vocabulary asset of the tokenizer {self.tokenizer.name!r} holds "
                f"{size} tokens but the model was saved with vocabulary_size={declared}. "
                f"Received: a {type(self.tokenizer).__name__} vocabulary of {size} tokens"
            ))
        self._vocabulary_error = None

    def _declared(self):
        if self._declared_vocabulary_size is None:
            return "the file records no vocabulary size"
        return f"the model was saved with vocabulary_size={self._declared_vocabulary_size}"

    def _missing_vocabulary(self):
        return ValueError(
            "The saved file has no vocabulary asset for the tokenizer "
            f"{self.tokenizer.name!r} ({type(self.tokenizer).__name__}) of preprocessor "
            f"{self.name!r}; {self._declared()}. The file is incomplete (a weights-only "
            "file holds no vocabulary either: load the whole `.keras` file)."
        )

    def _vocabulary_failure(self, error):
        """Keeps the first error of a load, and returns the one to raise."""
        if self._vocabulary_error is None:
            self._vocabulary_error = error
        return self._vocabulary_error

    def _require_tokenizer(self, what):
        if self.tokenizer is None:
            raise ValueError(f"{what} needs a tokenizer; this preprocessor has none.")
        if not self.tokenizer_ready:
            raise ValueError(
                f"{what} needs the tokenizer's vocabulary, which is not set (a config "
                "read alone; load the whole `.keras` file)."
            )

    def pack_texts(self, texts, sequence_length, return_segment_ids=False):
        """`{"token_ids", "padding_mask"}` `S + (sequence_length,)` for strings of shape `S`.

        Each text becomes `start tokens... end pad...` with the tokenizer's
        ids (no start token for a tokenizer without one); a text longer
        than the room left is cut, keeping the end token. `padding_mask`
        marks the packed tokens, whatever their ids (the end and padding
        ids may be the same). Invalid UTF-8 never fails: it is replaced by
        U+FFFD first.

        Args:
            texts: string tensor of any shape `S`.
            sequence_length: int.
            return_segment_ids: bool. Also return `segment_ids`, int32
                zeros `S + (sequence_length,)`: one segment, for a
                BERT-style text tower.
        """
        self._require_tokenizer("Packing texts")
        sequence_length = int(sequence_length)
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        outer_shape = tf.shape(texts)
        flat = tf.strings.unicode_transcode(
            tf.reshape(texts, [-1]), input_encoding="UTF-8", output_encoding="UTF-8",
            errors="replace", replacement_char=0xFFFD,
        )
        if _lowercases(self.tokenizer):
            flat = tf.strings.lower(flat, encoding="utf-8")
        if _canonicalizes(self.tokenizer):
            flat = _canonicalize(flat)
        _refresh_sentence_piece(self.tokenizer)
        pieces = _ragged_ids(self.tokenizer.tokenize(flat))
        packer = keras_hub.layers.StartEndPacker(
            sequence_length=sequence_length,
            start_value=self.start_token_id,
            end_value=self.end_token_id,
            pad_value=self.pad_token_id,
            return_padding_mask=True,
            _allow_python_workflow=False,
        )
        token_ids, padding_mask = packer(pieces)
        shape = tf.concat([outer_shape, [sequence_length]], axis=0)
        static_shape = texts.shape.concatenate([sequence_length])
        token_ids = tf.ensure_shape(tf.reshape(tf.cast(token_ids, tf.int32), shape), static_shape)
        outputs = {
            "token_ids": token_ids,
            "padding_mask": tf.ensure_shape(
                tf.reshape(tf.cast(padding_mask, tf.bool), shape), static_shape
            ),
        }
        if return_segment_ids:
            outputs["segment_ids"] = tf.zeros_like(token_ids)
        return outputs

    def detokenize(self, token_ids):
        """String tensor `(batch,)` of valid UTF-8 from ids `(batch, length)`.

        Tokens from the first end token on are dropped, as are the start and
        padding tokens and ids outside the vocabulary. Byte-level tokens
        (CLIP's) that do not make whole characters become U+FFFD, so that
        served captions are always valid UTF-8.
        """
        self._require_tokenizer("Detokenizing")
        token_ids = tf.cast(tf.convert_to_tensor(token_ids), tf.int32)
        after_end = tf.cumsum(tf.cast(token_ids == self.end_token_id, tf.int32), axis=-1) > 0
        keep = (
            ~after_end
            & (token_ids != self.pad_token_id)
            & (token_ids >= 0)
            & (token_ids < self.vocabulary_size)
        )
        if self.start_token_id is not None:
            keep &= token_ids != self.start_token_id
        kept = tf.ragged.boolean_mask(token_ids, keep)
        _refresh_sentence_piece(self.tokenizer)
        if _keeps_word_ends(self.tokenizer):
            texts = _detokenize_words(self.tokenizer, kept)
        else:
            texts = tf.convert_to_tensor(self.tokenizer.detokenize(kept), dtype=tf.string)
        return tf.strings.unicode_transcode(
            texts, input_encoding="UTF-8", output_encoding="UTF-8", errors="replace",
            replacement_char=0xFFFD,
        )

    def detokenize_to_strings(self, token_ids):
        """list of str from ids `(batch, length)` (eager)."""
        if not len(token_ids):
            return []
        texts = self.detokenize(token_ids).numpy()
        return [t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in texts]

    def get_config(self):
        config = super().get_config()
        config.pop("config_file", None)
        config["vocabulary_size"] = self.vocabulary_size
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("config_file", None)
        for key in ("tokenizer", "image_converter", "video_converter"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _check_vocabulary_size(tokenizer, vocabulary_size):
    if vocabulary_size is None:
        return None
    vocabulary_size = check_int("vocabulary_size", vocabulary_size, 1)
    if tokenizer is None:
        raise ValueError(
            "`vocabulary_size` is the size of the tokenizer's vocabulary; this "
            f"preprocessor has no tokenizer. Received: vocabulary_size={vocabulary_size}"
        )
    return vocabulary_size


def text_packer(value, name="preprocessor"):
    """The callable that packs a pipeline's texts: strings `S` -> `{"token_ids",
    "padding_mask"}` of shape `S + (length,)`.

    Args:
        value: a model with a preprocessor, a family preprocessor (its
            `preprocess_texts`: the family's length convention), or a
            `TextTokenizer` with a `sequence_length`.
        name: str. The argument name for errors.
    """
    preprocessor = getattr(value, "preprocessor", value)
    if preprocessor is None:
        raise ValueError(
            f"`{name}` is a model without a preprocessor; build it with "
            f"`preprocessor=` or pass the preprocessor. Received: {name}={value!r:.100}"
        )
    if hasattr(preprocessor, "preprocess_texts"):
        return preprocessor.preprocess_texts
    if callable(preprocessor) and getattr(preprocessor, "sequence_length", None) is not None:
        return preprocessor
    raise ValueError(
        f"`{name}` must be a model with a preprocessor, a family preprocessor (e.g. "
        "`mmzoo.models.ImageCaptioningPreprocessor`) or a `TextTokenizer` with a "
        f"`sequence_length`. Received: {name}={value!r:.100}"
    )
