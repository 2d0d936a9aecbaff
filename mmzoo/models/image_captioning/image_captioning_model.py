import keras
import numpy as np
from keras import ops

from mmzoo.layers import TextDecoder
from mmzoo.layers.validation import check_divisible
from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.validation import check_rate
from mmzoo.models._generation import GENERATION_METHODS  # noqa: F401  (public name)
from mmzoo.models._generation import CachedTextGeneration
from mmzoo.models.image_captioning.image_captioning_preprocessor import (
    ImageCaptioningPreprocessor,
)
from mmzoo.models.preprocessing import attach_preprocessor
from mmzoo.models.compression import CompressionMixin
from mmzoo.models.saving import model_config
from mmzoo.models.saving import model_from_config
from mmzoo.models.preprocessing import special_ids_from
from mmzoo.data.inputs import check_padding_mask
from mmzoo.data.inputs import check_token_ids
from mmzoo.data.inputs import prepare_pixels


@keras.saving.register_keras_serializable(package="mmzoo")
class ImageCaptioningModel(CompressionMixin, CachedTextGeneration, keras.Model):
    """Image encoder + Transformer decoder that writes captions.

    A functional graph: `images` -> `image_encoder` (its `sequence_output`) ->
    linear projection to `hidden_dim` -> `text_decoder`, a
    `mmzoo.layers.TextDecoder` (`num_layers` pre-norm keras-hub
    `TransformerDecoder` blocks: causal self-attention over the caption,
    cross-attention to the image tokens; final norm; vocabulary logits in
    float32, also under mixed precision).

    Training is teacher forcing: inputs are the caption without its last token,
    targets the caption without its first (see `teacher_forcing_split`), and
    `mmzoo.losses.MaskedSequenceCrossEntropy` ignores the padding.

    `generate` decodes inside one XLA-compiled while loop over a fixed-length
    buffer, with a self-attention key/value cache and the cross-attention keys
    and values computed once per image; decoding strategies are keras-hub
    samplers.

    Args:
        image_encoder: `keras.Model` taking `images` and returning a dict with
            `sequence_output` `(batch, num_tokens, dim)` (every mmzoo image
            encoder does), frozen or trainable.
        vocabulary_size: int.
        sequence_length: int. Decoder input length (captions are packed to
            `sequence_length + 1` tokens, then split for teacher forcing).
        num_layers: int. Decoder blocks.
        num_heads: int. Must divide `hidden_dim`.
        hidden_dim: int.
        intermediate_dim: int.
        dropout_rate: float.
        start_token_id, end_token_id, pad_token_id: ints or None. The
            tokenizer's special tokens: read from `preprocessor` when None,
            else mmzoo's reserved ids (2 start, 3 end, 0 pad). A start token
            is needed, and the end and padding ids must differ (the loss
            ignores padding targets); pass the loss
            `MaskedSequenceCrossEntropy(pad_token_id=model.pad_token_id)`.
        preprocessor: `ImageCaptioningPreprocessor` or None. Kept by the
            model and saved in its `.keras` file, so that `generate` takes
            image files and returns strings; its `sequence_length` is set to
            the model's.
        **kwargs: `name`, `dtype` (e.g. `"mixed_bfloat16"`), ...

    Call inputs:
        `{"images": (batch, height, width, channels), "token_ids": (batch,
        sequence_length) int32, "padding_mask": (batch, sequence_length) bool}`.

    Returns:
        Logits `(batch, sequence_length, vocabulary_size)`, float32.

    Example:

    ```python
    encoder = mmzoo.presets.build_from_preset("vit_image_encoder_tiny")
    model = mmzoo.models.build_image_captioning_model(
        encoder, vocabulary_size=500, sequence_length=16)
    model.compile(optimizer="adam",
                  loss=mmzoo.losses.MaskedSequenceCrossEntropy(),
                  jit_compile=True)
    model.fit(dataset.map(mmzoo.models.teacher_forcing_split))
    token_ids = model.generate(images, method="beam", num_beams=4)
    ```
    """

    def __init__(
        self,
        image_encoder,
        vocabulary_size,
        sequence_length,
        num_layers=2,
        num_heads=4,
        hidden_dim=256,
        intermediate_dim=1024,
        dropout_rate=0.1,
        start_token_id=None,
        end_token_id=None,
        pad_token_id=None,
        layer_norm_epsilon=1e-6,
        preprocessor=None,
        dtype=None,
        **kwargs,
    ):
        start_token_id, end_token_id, pad_token_id = special_ids_from(
            preprocessor, start_token_id, end_token_id, pad_token_id
        )
        _check_decoder_ids(start_token_id, end_token_id, pad_token_id)
        # Plain Python numbers (NumPy scalars are accepted), for a JSON-clean config.
        (
            vocabulary_size, sequence_length, num_layers, num_heads, hidden_dim,
            intermediate_dim, dropout_rate, (start_token_id, end_token_id, pad_token_id),
        ) = _check_arguments(
            image_encoder, vocabulary_size, sequence_length, num_layers, num_heads,
            hidden_dim, intermediate_dim, dropout_rate,
            (start_token_id, end_token_id, pad_token_id),
        )
        # === Layers ===
        self.image_encoder = image_encoder
        self.image_projection = keras.layers.Dense(
            hidden_dim, dtype=dtype, name="image_projection"
        )
        self.text_decoder = TextDecoder(
            vocabulary_size=vocabulary_size,
            sequence_length=sequence_length,
            num_layers=num_layers,
            num_heads=num_heads,
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            dropout_rate=dropout_rate,
            layer_norm_epsilon=layer_norm_epsilon,
            dtype=dtype,
            name="text_decoder",
        )

        # === Functional Model ===
        image_shape = tuple(image_encoder.inputs[0].shape[1:])
        images = keras.Input(shape=image_shape, name="images")
        token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(sequence_length,), dtype="bool", name="padding_mask")
        image_tokens = self.image_projection(image_encoder(images)["sequence_output"])
        logits = self.text_decoder(token_ids, image_tokens, padding_mask=padding_mask)
        super().__init__(
            inputs={"images": images, "token_ids": token_ids, "padding_mask": padding_mask},
            outputs=logits,
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout_rate = dropout_rate
        self.start_token_id = start_token_id
        self.end_token_id = end_token_id
        self.pad_token_id = pad_token_id
        self.layer_norm_epsilon = layer_norm_epsilon
        self.image_shape = image_shape
        self.preprocessor = attach_preprocessor(
            preprocessor, ImageCaptioningPreprocessor, vocabulary_size,
            sequence_length=sequence_length, image_shape=image_shape,
        )
        self._generate_functions = {}
        self.generate_trace_count = 0

    def get_config(self):
        return model_config(
            self,
            image_encoder=self.image_encoder,
            vocabulary_size=self.vocabulary_size,
            sequence_length=self.sequence_length,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            hidden_dim=self.hidden_dim,
            intermediate_dim=self.intermediate_dim,
            dropout_rate=self.dropout_rate,
            start_token_id=self.start_token_id,
            end_token_id=self.end_token_id,
            pad_token_id=self.pad_token_id,
            layer_norm_epsilon=self.layer_norm_epsilon,
        )

    @classmethod
    def from_config(cls, config):
        return model_from_config(cls, config)

    # ------------------------------------------------------- inspection
    def cross_attention_scores(self, images, token_ids, padding_mask=None, block_index=-1):
        """Where each caption token looks in the image, for one decoder block.

        Args:
            images: `(batch, height, width, channels)`, floats in [0, 1] or
                uint8 in [0, 255] (scaled by 1/255); NaN, inf and floats
                outside [0, 1] are refused.
            token_ids: int `(batch, length)`, `length <= sequence_length`, a
                caption starting with the start token (teacher-forced, as in
                training).
            padding_mask: optional bool `(batch, length)`.
            block_index: int in `[-num_layers, num_layers)`. Which decoder
                block (default: the last).

        Returns:
            `(batch, num_heads, length, num_image_tokens)` attention
            weights of the block's cross-attention; row `t` is what the model
            looked at when predicting token `t + 1`. Each row sums to 1. For a
            ViT encoder, image tokens are patches in row-major order.
        """
        images = prepare_pixels("images", images, self.image_shape)
        token_ids = np.asarray(token_ids)
        if token_ids.ndim != 2 or not 1 <= token_ids.shape[1] <= self.sequence_length:
            raise ValueError(
                "`token_ids` must have shape (batch, length) with 1 <= length <= "
                f"sequence_length={self.sequence_length}. "
                f"Received: token_ids with shape {token_ids.shape}"
            )
        token_ids = check_token_ids(
            "token_ids", token_ids, token_ids.shape[1], self.vocabulary_size
        )
        if padding_mask is not None:
            padding_mask = check_padding_mask("padding_mask", padding_mask, token_ids.shape)
        if len(token_ids) != len(images):
            raise ValueError(
                "`images` and `token_ids` must hold the same number of examples. "
                f"Received: {len(images)} images and {len(token_ids)} captions"
            )
        if (
            isinstance(block_index, (bool, np.bool_))
            or not isinstance(block_index, (int, np.integer))
            or not -self.num_layers <= block_index < self.num_layers
        ):
            raise ValueError(
                f"`block_index` must be an int in [-{self.num_layers}, "
                f"{self.num_layers}) (the model's num_layers). "
                f"Received: block_index={block_index!r}"
            )
        return ops.convert_to_numpy(
            self.text_decoder.cross_attention_scores(
                ops.convert_to_tensor(token_ids, "int32"),
                self.encode_images(images),
                padding_mask=padding_mask,
                block_index=int(block_index),
            )
        )

    # ------------------------------------------------------------ decoding
    def encode_images(self, images):
        """Image tokens projected to `hidden_dim`: `(batch, num_tokens, hidden_dim)`.

        On tensors and traceable (decoding calls it inside the compiled
        loop), so `images` are not checked here: pass floats in [0, 1].
        """
        return self.image_projection(self.image_encoder(images, training=False)["sequence_output"])

    def _generation_memory(self, images):
        return self.encode_images(images), None

    def _generation_sequence_length(self):
        return "sequence_length", self.sequence_length

    def generate(
        self,
        images,
        max_length=None,
        method="greedy",
        num_beams=4,
        k=10,
        p=0.9,
        temperature=1.0,
        seed=None,
        batch_size=None,
    ):
        """Writes captions for a batch of images.

        Every argument is checked in NumPy before anything is compiled.

        Args:
            images: array `(batch, height, width, channels)`: floats in
                [0, 1], or uint8 in [0, 255] (scaled by 1/255). NaN, inf and
                floats outside [0, 1] (by more than 1/255) are refused. With
                a preprocessor, also images of any size and channel count,
                and lists of image file paths or encoded bytes
                (`mmzoo.data.ImageConverter.convert`).
            max_length: int in `[1, sequence_length]`. Tokens to generate at
                most (end token included); defaults to `sequence_length`.
            method: `"greedy"`, `"beam"`, `"top_k"` or `"top_p"`.
            num_beams: positive int, for `"beam"`.
            k: int in `[1, vocabulary_size]`, for `"top_k"`.
            p: float in (0, 1], for `"top_p"`.
            temperature: positive float. Logit temperature.
            seed: int or None, for the sampling methods.
            batch_size: positive int, or None for all images at once. Split
                large inputs into batches of this size (the last one padded,
                so one compiled function serves all).

        Returns:
            int32 array `(batch, max_length)` of token ids after the start
            token, padded with `pad_token_id` after the end token; or, when
            the model has a preprocessor with a tokenizer, a list of caption
            strings (valid UTF-8). The pad and start tokens are never
            generated. No images give an empty
            `(0, max_length)` array (or `[]`) without running the model.
        """
        if self.preprocessor is not None:
            images = self.preprocessor.preprocess_images(images)
        else:
            images = prepare_pixels("images", images, self.image_shape)
        tokens = self._generate_batched(
            (images,), batch_size, max_length=max_length, method=method,
            num_beams=num_beams, k=k, p=p, temperature=temperature, seed=seed,
        )
        if self.preprocessor is not None and self.preprocessor.tokenizer is not None:
            return self.preprocessor.detokenize_to_strings(tokens)
        return tokens


def _check_decoder_ids(start_token_id, end_token_id, pad_token_id):
    """Refuses special ids a decoder cannot be trained or decode with."""
    if start_token_id is None:
        raise ValueError(
            "A captioner needs a start token to begin decoding, and the tokenizer has "
            "none (e.g. SigLIP's); use a tokenizer with one (mmzoo's TextTokenizer, "
            "BertTokenizer, CLIPTokenizer, GemmaTokenizer...). Received: start_token_id=None"
        )
    if end_token_id is not None and end_token_id == pad_token_id:
        # `MaskedSequenceCrossEntropy(pad_token_id=...)` ignores targets equal
        # to the padding id: the end token would never be learnt.
        raise ValueError(
            "A captioner needs distinct end and padding tokens: the loss ignores "
            "padding targets, so it would never learn to end a caption (e.g. "
            "CLIPTokenizer(pad_with_end_token=True) or SigLIP's tokenizer pad with the "
            "end token; use CLIPTokenizer's default padding). Received: "
            f"end_token_id={end_token_id}, pad_token_id={pad_token_id}"
        )


def _check_arguments(
    image_encoder, vocabulary_size, sequence_length, num_layers, num_heads,
    hidden_dim, intermediate_dim, dropout_rate, special_ids,
):
    if not isinstance(image_encoder, keras.Model):
        raise ValueError(
            f"`image_encoder` must be a keras.Model. Received: image_encoder={image_encoder!r}"
        )
    output = image_encoder.output
    if not isinstance(output, dict) or "sequence_output" not in output:
        keys = sorted(output) if isinstance(output, dict) else type(output).__name__
        raise ValueError(
            "`image_encoder` must return a dict with `sequence_output` (every mmzoo "
            f"image encoder does). Received: outputs {keys}"
        )
    if len(image_encoder.inputs[0].shape) != 4:
        raise ValueError(
            "`image_encoder` must take images (batch, height, width, channels). "
            f"Received: input shape {image_encoder.inputs[0].shape}"
        )
    sizes = [
        check_positive_int(name, value)
        for name, value in (
            ("vocabulary_size", vocabulary_size),
            ("sequence_length", sequence_length),
            ("num_layers", num_layers),
            ("num_heads", num_heads),
            ("hidden_dim", hidden_dim),
            ("intermediate_dim", intermediate_dim),
        )
    ]
    check_divisible("hidden_dim", hidden_dim, "num_heads", num_heads)
    dropout_rate = check_rate("dropout_rate", dropout_rate)
    for name, value in zip(("start_token_id", "end_token_id", "pad_token_id"), special_ids):
        if (
            isinstance(value, (bool, np.bool_))
            or not isinstance(value, (int, np.integer))
            or not 0 <= value < vocabulary_size
        ):
            raise ValueError(
                f"`{name}` must be an int in [0, vocabulary_size={vocabulary_size}). "
                f"Received: {name}={value!r}"
            )
    return (*sizes, dropout_rate, tuple(int(value) for value in special_ids))


def build_image_captioning_model(image_encoder, vocabulary_size, sequence_length, **kwargs):
    """Builds an `ImageCaptioningModel` (see its docstring for all arguments).

    Args:
        image_encoder: any mmzoo image encoder (ViT, CNN / keras-hub backbone),
            frozen or not.
        vocabulary_size: int.
        sequence_length: int.
        **kwargs: `num_layers`, `num_heads`, `hidden_dim`, `intermediate_dim`,
            `dropout_rate`, special token ids, `name`, `dtype`.

    Returns:
        An `ImageCaptioningModel`.

    Example:

    ```python
    model = mmzoo.models.build_image_captioning_model(
        mmzoo.presets.build_from_preset("vit_image_encoder_tiny"),
        vocabulary_size=500, sequence_length=16, num_layers=2, hidden_dim=64)
    ```
    """
    return ImageCaptioningModel(image_encoder, vocabulary_size, sequence_length, **kwargs)


def teacher_forcing_split(features):
    """`{"images", "token_ids", "padding_mask"}` of `sequence_length + 1`
    tokens -> `(x, y)` for teacher forcing: `x` holds the images and the
    caption without its last token, `y` the caption without its first token.
    A pure `dict -> tuple` function for `tf.data.Dataset.map`.

    The padding mask is passed on as int32 (the model casts it back to bool):
    under `tf.distribute.MirroredStrategy`, Keras 3.15's `model.fit` averages
    the first batch across replicas to build the model, which fails on bool
    tensors (`AddN` has no bool kernel).

    Evaluation batches (`captioning_pipeline(repeat=False)`) carry
    `example_mask`, 0.0 for the rows that pad the last batch: it is returned
    as a third element, the sample weight `mask[:, None]`, float32
    `(batch, 1)`. Keras broadcasts it over the tokens for token metrics
    (`mmzoo.evaluation.MaskedTokenAccuracy`) and lines it up with the
    `(batch,)` per-caption values of `mmzoo.losses.MaskedSequenceCrossEntropy`;
    a `(batch, sequence_length)` weight would instead be broadcast against
    those values along the wrong axis.

    Args:
        features: dict of batched tensors, as above, optionally with
            `example_mask` float `(batch,)`.

    Returns:
        `(x, y)`, or `(x, y, sample_weight)` when `features` has
        `example_mask`.
    """
    x = {
        "images": features["images"],
        "token_ids": features["token_ids"][..., :-1],
        "padding_mask": ops.cast(features["padding_mask"][..., :-1], "int32"),
    }
    y = features["token_ids"][..., 1:]
    if "example_mask" not in features:
        return x, y
    return x, y, ops.cast(features["example_mask"], "float32")[:, None]
