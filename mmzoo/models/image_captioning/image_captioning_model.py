import keras
import keras_hub
import numpy as np
from keras import ops

from mmzoo.layers._validation import check_divisible
from mmzoo.layers._validation import check_positive_int
from mmzoo.layers._validation import check_rate

GENERATION_METHODS = ("greedy", "beam", "top_k", "top_p")


@keras.saving.register_keras_serializable(package="mmzoo")
class ImageCaptioningModel(keras.Model):
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
        self.token_embedding = keras_hub.layers.TokenAndPositionEmbedding(
            vocabulary_size=vocabulary_size,
            sequence_length=sequence_length,
            embedding_dim=hidden_dim,
            dtype=dtype,
            name="token_embedding",
        )
        self.embedding_dropout = keras.layers.Dropout(
            dropout_rate, dtype=dtype, name="embedding_dropout"
        )
        self.decoder_blocks = [
            keras_hub.layers.TransformerDecoder(
                intermediate_dim=intermediate_dim,
                num_heads=num_heads,
                dropout=dropout_rate,
                activation="gelu",
                layer_norm_epsilon=layer_norm_epsilon,
                normalize_first=True,
                dtype=dtype,
                name=f"decoder_block_{i}",
            )
            for i in range(num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="final_norm"
        )
        self.logits_dense = keras.layers.Dense(
            vocabulary_size, dtype=dtype, name="logits"
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

    def _initial_cache(self, image_tokens, max_length):
        """Self-attention cache of zeros, cross-attention keys/values computed once."""
        batch_size = ops.shape(image_tokens)[0]
        head_dim = self.hidden_dim // self.num_heads
        self_cache = ops.zeros(
            (batch_size, self.num_layers, 2, max_length, self.num_heads, head_dim),
            dtype=self.decoder_blocks[0].compute_dtype,
        )
        cross_caches = []
        for block in self.decoder_blocks:
            attention = block._cross_attention_layer
            key = attention._key_dense(image_tokens)
            value = attention._value_dense(image_tokens)
            cross_caches.append(ops.stack([key, value], axis=1))
        cross_cache = ops.stack(cross_caches, axis=1)
        return self_cache, cross_cache

    def call_with_cache(self, token_ids, cache, index):
        """One decoding step: the token at `index` -> logits for `index + 1`.

        Args:
            token_ids: `(batch, 1)` int, the token at position `index`.
            cache: `(self_attention_cache, cross_attention_cache, image_tokens)`.
            index: int tensor, the position of `token_ids`.

        Returns:
            `(logits (batch, vocabulary_size), hidden (batch, hidden_dim), cache)`.
        """
        self_cache, cross_cache, image_tokens = cache
        x = self.token_embedding(token_ids, start_index=index)
        next_caches = []
        for i, block in enumerate(self.decoder_blocks):
            x, next_self_cache, _ = block(
                decoder_sequence=x,
                encoder_sequence=image_tokens,
                self_attention_cache=self_cache[:, i, ...],
                self_attention_cache_update_index=index,
                cross_attention_cache=cross_cache[:, i, ...],
                cross_attention_cache_update_index=None,
            )
            next_caches.append(next_self_cache)
        hidden = self.final_norm(x)
        logits = ops.cast(self.logits_dense(hidden), "float32")
        return logits[:, 0, :], hidden[:, 0, :], (ops.stack(next_caches, axis=1), cross_cache, image_tokens)

    def _generate_step(self, images, sampler, max_length):
        """Decodes a batch; traced once per input shape and sampler."""
        self.generate_trace_count += 1
        image_tokens = self.encode_images(images)
        batch_size = ops.shape(images)[0]
        prompt = ops.concatenate(
            [
                ops.full((batch_size, 1), self.start_token_id, dtype="int32"),
                ops.full((batch_size, max_length - 1), self.pad_token_id, dtype="int32"),
            ],
            axis=1,
        )
        self_cache, cross_cache = self._initial_cache(image_tokens, max_length)

        # Padding and the start token are never generated.
        banned = np.zeros((self.vocabulary_size,), "float32")
        banned[[self.pad_token_id, self.start_token_id]] = -1e9

        def next_fn(prompt, cache, index):
            num_samples = ops.shape(prompt)[0]
            token = ops.slice(prompt, [0, index - 1], [num_samples, 1])
            logits, hidden, cache = self.call_with_cache(token, cache, index - 1)
            return logits + banned, hidden, cache

        mask = ops.concatenate(
            [
                ops.ones((batch_size, 1), dtype="bool"),
                ops.zeros((batch_size, max_length - 1), dtype="bool"),
            ],
            axis=1,
        )
        tokens = sampler(
            next=next_fn,
            prompt=prompt,
            cache=(self_cache, cross_cache, image_tokens),
            index=1,
            mask=mask,
            stop_token_ids=(self.end_token_id,),
            model=self,
        )
        # Drop the start token; everything after the first end token is padding.
        tokens = tokens[:, 1:]
        is_end = ops.cast(ops.equal(tokens, self.end_token_id), "int32")
        after_end = (ops.cumsum(is_end, axis=1) - is_end) > 0
        return ops.where(after_end, self.pad_token_id, tokens)

    def _sampler(self, method, num_beams, k, p, temperature, seed):
        if method == "greedy":
            return keras_hub.samplers.GreedySampler(temperature=temperature)
        if method == "beam":
            check_positive_int("num_beams", num_beams)
            return keras_hub.samplers.BeamSampler(num_beams=num_beams, temperature=temperature)
        if method == "top_k":
            check_positive_int("k", k)
            return keras_hub.samplers.TopKSampler(k=k, seed=seed, temperature=temperature)
        if not 0.0 < p <= 1.0:
            raise ValueError(f"`p` must be in (0, 1]. Received: p={p!r}")
        return keras_hub.samplers.TopPSampler(p=p, seed=seed, temperature=temperature)

    def make_generate_function(
        self, max_length=None, method="greedy", num_beams=4, k=10, p=0.9,
        temperature=1.0, seed=None,
    ):
        """The compiled decoding function `images -> token ids` for one setting.

        Compiled functions are cached per setting, so repeated `generate`
        calls with the same batch size and length do not retrace.
        """
        max_length = self._check_max_length(max_length)
        if method not in GENERATION_METHODS:
            raise ValueError(
                f"`method` must be one of {list(GENERATION_METHODS)}. Received: method={method!r}"
            )
        key = (max_length, method, num_beams, k, p, temperature, seed)
        if key in self._generate_functions:
            return self._generate_functions[key]
        sampler = self._sampler(method, num_beams, k, p, temperature, seed)
        # Sampling state is reset before every call, so that the same seed
        # gives the same captions call after call.
        initial_state = [ops.convert_to_numpy(v) for v in sampler.variables]

        def generate_step(images):
            return self._generate_step(images, sampler, max_length)

        if keras.config.backend() == "tensorflow":
            import tensorflow as tf  # compilation is backend-specific

            function = tf.function(generate_step, jit_compile=True)
        else:
            function = generate_step  # eager on other backends

        def reset_and_generate(images):
            for variable, value in zip(sampler.variables, initial_state):
                variable.assign(value)
            return function(images)

        self._generate_functions[key] = reset_and_generate
        return reset_and_generate

    def _check_max_length(self, max_length):
        # The buffer holds the start token plus `max_length` generated tokens,
        # within the `sequence_length + 1` positions the model was trained on.
        max_length = self.sequence_length if max_length is None else max_length
        if not isinstance(max_length, int) or not 1 <= max_length <= self.sequence_length:
            raise ValueError(
                f"`max_length` must be an int in [1, {self.sequence_length}] (the model's "
                f"`sequence_length`). Received: max_length={max_length!r}"
            )
        return max_length + 1

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
        function = self.make_generate_function(
            max_length, method, num_beams, k, p, temperature, seed
        )
        batch_size = batch_size or len(images)
        outputs = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            missing = batch_size - len(chunk)
            if missing:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], missing, axis=0)])
            tokens = ops.convert_to_numpy(function(chunk))
            outputs.append(tokens[: batch_size - missing])
        tokens = np.concatenate(outputs, axis=0).astype("int32")
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
