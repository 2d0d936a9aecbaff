import keras
import numpy as np
from keras import ops

from mmzoo.layers._validation import check_divisible
from mmzoo.layers._validation import check_positive_int
from mmzoo.layers._validation import check_rate
from mmzoo.models._generation import GENERATION_METHODS  # noqa: F401  (public name)
from mmzoo.models._generation import CachedTextGeneration


@keras.saving.register_keras_serializable(package="mmzoo")
class ImageCaptioningModel(CachedTextGeneration, keras.Model):
    """Image encoder + Transformer decoder that writes captions.

    A functional graph: `images` -> `image_encoder` (its `sequence_output`) ->
    linear projection to `hidden_dim` -> `num_layers` pre-norm Transformer
    decoder blocks (causal self-attention over the caption, cross-attention to
    the image tokens; keras-hub `TransformerDecoder`) -> final norm ->
    vocabulary logits (float32, also under mixed precision).

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
        start_token_id, end_token_id, pad_token_id: ints. The tokenizer's
            special tokens (mmzoo's tokenizer reserves 0 pad, 2 start, 3 end).
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
        start_token_id=2,
        end_token_id=3,
        pad_token_id=0,
        layer_norm_epsilon=1e-6,
        dtype=None,
        **kwargs,
    ):
        _check_arguments(
            image_encoder, vocabulary_size, sequence_length, num_layers, num_heads,
            hidden_dim, intermediate_dim, dropout_rate,
            (start_token_id, end_token_id, pad_token_id),
        )
        # === Layers ===
        self.image_encoder = image_encoder
        self.image_projection = keras.layers.Dense(
            hidden_dim, dtype=dtype, name="image_projection"
        )
        self._build_text_decoder(
            vocabulary_size, sequence_length, num_layers, num_heads, hidden_dim,
            intermediate_dim, dropout_rate, layer_norm_epsilon, dtype,
        )
        # Softmax statistics in float32 whatever the compute dtype.
        self.logits_cast = keras.layers.Activation("linear", dtype="float32", name="logits_float32")

        # === Functional Model ===
        image_shape = tuple(image_encoder.inputs[0].shape[1:])
        images = keras.Input(shape=image_shape, name="images")
        token_ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(sequence_length,), dtype="bool", name="padding_mask")
        image_tokens = self.image_projection(image_encoder(images)["sequence_output"])
        x = self.embedding_dropout(self.token_embedding(token_ids))
        for block in self.decoder_blocks:
            x = block(x, image_tokens, decoder_padding_mask=padding_mask)
        logits = self.logits_cast(self.logits_dense(self.final_norm(x)))
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
        self.tokenizer = None
        self._generate_functions = {}
        self.generate_trace_count = 0

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "image_encoder": keras.saving.serialize_keras_object(self.image_encoder),
            "vocabulary_size": self.vocabulary_size,
            "sequence_length": self.sequence_length,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "dropout_rate": self.dropout_rate,
            "start_token_id": self.start_token_id,
            "end_token_id": self.end_token_id,
            "pad_token_id": self.pad_token_id,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["image_encoder"] = keras.saving.deserialize_keras_object(config["image_encoder"])
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)

    # ------------------------------------------------------- inspection
    def cross_attention_scores(self, images, token_ids, padding_mask=None, block_index=-1):
        """Where each caption token looks in the image, for one decoder block.

        Args:
            images: `(batch, height, width, channels)`.
            token_ids: int `(batch, sequence_length)`, a caption starting with
                the start token (teacher-forced, as in training).
            padding_mask: optional bool `(batch, sequence_length)`.
            block_index: int. Which decoder block (default: the last).

        Returns:
            `(batch, num_heads, sequence_length, num_image_tokens)` attention
            weights of the block's cross-attention; row `t` is what the model
            looked at when predicting token `t + 1`. Each row sums to 1. For a
            ViT encoder, image tokens are patches in row-major order.
        """
        image_tokens = self.encode_images(images)
        x = self.token_embedding(ops.convert_to_tensor(token_ids, "int32"))
        if padding_mask is not None:
            padding_mask = ops.cast(padding_mask, "bool")
        target = self.decoder_blocks[block_index]
        for block in self.decoder_blocks:
            if block is not target:
                x = block(x, image_tokens, decoder_padding_mask=padding_mask)
                continue
            # The query of the cross-attention, as keras-hub's pre-norm
            # TransformerDecoder computes it: x + SelfAttention(LN(x)), then
            # the cross-attention layer norm.
            mask = block._compute_self_attention_mask(x, padding_mask, None, True, None, None)
            h = block._self_attention_layer_norm(x)
            x = x + block._self_attention_layer(query=h, value=h, attention_mask=mask)
            attention = block._cross_attention_layer
            query = attention._query_dense(block._cross_attention_layer_norm(x))
            key = attention._key_dense(image_tokens)
            value = attention._value_dense(image_tokens)
            _, scores = attention._compute_attention(
                query, key, value, return_attention_scores=True
            )
            return ops.cast(scores, "float32")

    # ------------------------------------------------------------ decoding
    def encode_images(self, images):
        """Image tokens projected to `hidden_dim`: `(batch, num_tokens, hidden_dim)`."""
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

        Args:
            images: array `(batch, height, width, channels)`, floats in [0, 1].
            max_length: int. Tokens to generate at most (end token included);
                defaults to `sequence_length`.
            method: `"greedy"`, `"beam"`, `"top_k"` or `"top_p"`.
            num_beams: int, for `"beam"`.
            k: int, for `"top_k"`.
            p: float, for `"top_p"`.
            temperature: float. Logit temperature.
            seed: int or None, for the sampling methods.
            batch_size: int or None. Split large inputs into batches of this
                size (the last one padded, so one compiled function serves all).

        Returns:
            int32 array `(batch, max_length)` of token ids after the start
            token, padded with `pad_token_id` after the end token; or, when a
            tokenizer is attached (`model.tokenizer = tokenizer`, e.g. a
            `mmzoo.data.TextTokenizer`), a list of caption strings. The pad
            and start tokens are never generated.
        """
        images = np.asarray(images, dtype="float32")
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"`images` must have shape (batch, {', '.join(map(str, self.image_shape))}). "
                f"Received: images with shape {images.shape}"
            )
        tokens = self._generate_batched(
            (images,), batch_size, max_length=max_length, method=method,
            num_beams=num_beams, k=k, p=p, temperature=temperature, seed=seed,
        )
        if self.tokenizer is not None:
            texts = ops.convert_to_numpy(self.tokenizer.detokenize(tokens))
            return [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts]
        return tokens


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
    for name, value in (
        ("vocabulary_size", vocabulary_size),
        ("sequence_length", sequence_length),
        ("num_layers", num_layers),
        ("num_heads", num_heads),
        ("hidden_dim", hidden_dim),
        ("intermediate_dim", intermediate_dim),
    ):
        check_positive_int(name, value)
    check_divisible("hidden_dim", hidden_dim, "num_heads", num_heads)
    check_rate("dropout_rate", dropout_rate)
    for name, value in zip(("start_token_id", "end_token_id", "pad_token_id"), special_ids):
        if not isinstance(value, int) or not 0 <= value < vocabulary_size:
            raise ValueError(
                f"`{name}` must be an int in [0, vocabulary_size={vocabulary_size}). "
                f"Received: {name}={value!r}"
            )


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
    """
    x = {
        "images": features["images"],
        "token_ids": features["token_ids"][..., :-1],
        "padding_mask": ops.cast(features["padding_mask"][..., :-1], "int32"),
    }
    return x, features["token_ids"][..., 1:]
