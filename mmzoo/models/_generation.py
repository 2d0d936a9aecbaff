"""Cached, XLA-compiled text generation shared by the model families that write text.

`CachedTextGeneration` is a mixin for a `keras.Model` whose text decoder is a
stack of keras-hub `TransformerDecoder` blocks cross-attending to a "memory"
sequence (image tokens for captioning; fused video-and-question tokens for
video QA). It decodes inside one XLA-compiled while loop over a fixed-length
buffer (keras-hub samplers), with a self-attention key/value cache and the
cross-attention keys and values computed once per input; compiled functions
are cached per setting, so repeated calls with the same shapes do not retrace
(`generate_trace_count` counts the traces).

A model using it sets, in its constructor:

- `token_embedding` (keras-hub `TokenAndPositionEmbedding`), `decoder_blocks`
  (list of `TransformerDecoder`), `final_norm`, `logits_dense` (all created
  by `_build_text_decoder(...)`) and `embedding_dropout`;
- `vocabulary_size`, `num_heads`, `hidden_dim`, `start_token_id`,
  `end_token_id`, `pad_token_id`;
- `_generate_functions = {}` and `generate_trace_count = 0`;

and implements `_generation_memory(*inputs)` returning `(memory (batch,
length, hidden_dim), memory_padding_mask (batch, length) bool or None)` and
`_generation_sequence_length()` returning `(name, value)` of its decoder
length argument (the longest answer/caption it was trained on).
"""

import keras
import keras_hub
import numpy as np
from keras import ops

from mmzoo.encoders.common import transformer_block
from mmzoo.layers.validation import check_positive_int
from mmzoo.data.inputs import check_batch_size
from mmzoo.data.inputs import check_number
from mmzoo.data.inputs import run_in_batches

GENERATION_METHODS = ("greedy", "beam", "top_k", "top_p")


def check_sampler_arguments(method, num_beams=4, k=10, p=0.9, temperature=1.0, seed=None):
    """The decoding settings, checked, as plain Python values.

    `temperature` applies to every method; `num_beams`, `k`, `p` and `seed`
    only to the methods that use them (the others are returned unchanged,
    as they are ignored).

    Returns:
        `(method, num_beams, k, p, temperature, seed)`.
    """
    if not isinstance(method, str) or method not in GENERATION_METHODS:
        raise ValueError(
            f"`method` must be one of {list(GENERATION_METHODS)}. Received: method={method!r}"
        )
    # temperature <= 0 divides the logits by zero or flips their sign
    # (constant or all-padding output).
    temperature = check_number("temperature", temperature, low=0.0, expected="a positive number")
    if method == "beam":
        num_beams = check_positive_int("num_beams", num_beams)
    if method == "top_k":
        k = check_positive_int("k", k)
    if method == "top_p":
        p = check_number("p", p, low=0.0, high=1.0, expected="in (0, 1]")
    if method in ("top_k", "top_p") and seed is not None:
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"`seed` must be an int or None. Received: seed={seed!r}")
        seed = int(seed)
    return method, num_beams, k, p, temperature, seed


def make_sampler(method, num_beams=4, k=10, p=0.9, temperature=1.0, seed=None):
    """The keras-hub sampler for one decoding `method` (arguments checked)."""
    method, num_beams, k, p, temperature, seed = check_sampler_arguments(
        method, num_beams, k, p, temperature, seed
    )
    if method == "greedy":
        return keras_hub.samplers.GreedySampler(temperature=temperature)
    if method == "beam":
        return keras_hub.samplers.BeamSampler(num_beams=num_beams, temperature=temperature)
    if method == "top_k":
        return keras_hub.samplers.TopKSampler(k=k, seed=seed, temperature=temperature)
    return keras_hub.samplers.TopPSampler(p=p, seed=seed, temperature=temperature)


class CachedTextGeneration:
    """Mixin: cached greedy / beam / sampling decoding (see the module docstring)."""

    def _build_text_decoder(
        self, vocabulary_size, sequence_length, num_layers, num_heads, hidden_dim,
        intermediate_dim, dropout_rate, layer_norm_epsilon, dtype,
    ):
        """Creates the text decoder's layers as attributes (see the module docstring).

        Token + position embedding and its dropout, `num_layers` pre-norm
        keras-hub `TransformerDecoder` blocks (GELU, cross-attention to the
        memory), the final norm and the vocabulary logits.
        """
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
            transformer_block(
                i, num_heads, intermediate_dim, dropout_rate, layer_norm_epsilon, dtype,
                prefix="decoder", decoder=True,
            )
            for i in range(num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="final_norm"
        )
        self.logits_dense = keras.layers.Dense(vocabulary_size, dtype=dtype, name="logits")

    def _generation_memory(self, *inputs):  # pragma: no cover - abstract
        raise NotImplementedError

    def _generation_sequence_length(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _initial_cache(self, memory, max_length):
        """Self-attention cache of zeros, cross-attention keys/values computed once."""
        batch_size = ops.shape(memory)[0]
        head_dim = self.hidden_dim // self.num_heads
        self_cache = ops.zeros(
            (batch_size, len(self.decoder_blocks), 2, max_length, self.num_heads, head_dim),
            dtype=self.decoder_blocks[0].compute_dtype,
        )
        cross_caches = []
        for block in self.decoder_blocks:
            attention = block._cross_attention_layer
            key = attention._key_dense(memory)
            value = attention._value_dense(memory)
            cross_caches.append(ops.stack([key, value], axis=1))
        cross_cache = ops.stack(cross_caches, axis=1)
        return self_cache, cross_cache

    def call_with_cache(self, token_ids, cache, index):
        """One decoding step: the token at `index` -> logits for `index + 1`.

        Args:
            token_ids: `(batch, 1)` int, the token at position `index`.
            cache: `(self_attention_cache, cross_attention_cache, memory)`, or
                with a fourth element, the memory's padding mask (int or bool
                `(batch, memory_length)`).
            index: int tensor, the position of `token_ids`.

        Returns:
            `(logits (batch, vocabulary_size), hidden (batch, hidden_dim), cache)`.
        """
        self_cache, cross_cache, memory = cache[:3]
        memory_mask = ops.cast(cache[3], "bool") if len(cache) > 3 else None
        x = self.token_embedding(token_ids, start_index=index)
        next_caches = []
        for i, block in enumerate(self.decoder_blocks):
            x, next_self_cache, _ = block(
                decoder_sequence=x,
                encoder_sequence=memory,
                encoder_padding_mask=memory_mask,
                self_attention_cache=self_cache[:, i, ...],
                self_attention_cache_update_index=index,
                cross_attention_cache=cross_cache[:, i, ...],
                cross_attention_cache_update_index=None,
            )
            next_caches.append(next_self_cache)
        hidden = self.final_norm(x)
        logits = ops.cast(self.logits_dense(hidden), "float32")
        next_cache = (ops.stack(next_caches, axis=1),) + tuple(cache[1:])
        return logits[:, 0, :], hidden[:, 0, :], next_cache

    def _generate_step(self, inputs, sampler, max_length):
        """Decodes a batch; traced once per input shape and sampler."""
        self.generate_trace_count += 1
        memory, memory_mask = self._generation_memory(*inputs)
        batch_size = ops.shape(memory)[0]
        prompt = ops.concatenate(
            [
                ops.full((batch_size, 1), self.start_token_id, dtype="int32"),
                ops.full((batch_size, max_length - 1), self.pad_token_id, dtype="int32"),
            ],
            axis=1,
        )
        self_cache, cross_cache = self._initial_cache(memory, max_length)
        cache = (self_cache, cross_cache, memory)
        if memory_mask is not None:
            # int32, not bool: the beam sampler gathers every cache entry.
            cache += (ops.cast(memory_mask, "int32"),)

        # Padding and the start token are never generated (unless one of
        # them is also the end token, which must stay possible).
        banned = np.zeros((self.vocabulary_size,), "float32")
        banned_ids = {self.pad_token_id, self.start_token_id} - {self.end_token_id, None}
        banned[sorted(banned_ids)] = -1e9

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
            cache=cache,
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
        return make_sampler(method, num_beams, k, p, temperature, seed)

    def make_generate_function(
        self, max_length=None, method="greedy", num_beams=4, k=10, p=0.9,
        temperature=1.0, seed=None, jit_compile=True,
    ):
        """The compiled decoding function `inputs -> token ids` for one setting.

        The function takes the model's generation inputs positionally (images
        for captioning; videos, question token ids and padding mask for video
        QA). Compiled functions are cached per setting, so repeated calls with
        the same batch size and length do not retrace. `jit_compile=False`
        gives a `tf.function` without XLA (for comparison).
        """
        max_length = self._check_max_length(max_length)
        method, num_beams, k, p, temperature, seed = check_sampler_arguments(
            method, num_beams, k, p, temperature, seed
        )
        if method == "top_k" and k > self.vocabulary_size:
            raise ValueError(
                f"`k` must be at most the vocabulary size ({self.vocabulary_size}). "
                f"Received: k={k}"
            )
        key = (max_length, method, num_beams, k, p, temperature, seed, jit_compile)
        if key in self._generate_functions:
            return self._generate_functions[key]
        sampler = self._sampler(method, num_beams, k, p, temperature, seed)
        # Sampling state is reset before every call, so that the same seed
        # gives the same texts call after call.
        initial_state = [ops.convert_to_numpy(v) for v in sampler.variables]

        def generate_step(*inputs):
            return self._generate_step(inputs, sampler, max_length)

        if keras.config.backend() == "tensorflow":
            import tensorflow as tf  # compilation is backend-specific

            function = tf.function(generate_step, jit_compile=jit_compile)
        else:
            function = generate_step  # eager on other backends

        def reset_and_generate(*inputs):
            for variable, value in zip(sampler.variables, initial_state):
                variable.assign(value)
            return function(*inputs)

        self._generate_functions[key] = reset_and_generate
        return reset_and_generate

    def _check_max_length(self, max_length):
        # The buffer holds the start token plus `max_length` generated tokens,
        # within the `sequence_length + 1` positions the model was trained on.
        name, limit = self._generation_sequence_length()
        max_length = limit if max_length is None else max_length
        if (
            isinstance(max_length, (bool, np.bool_))
            or not isinstance(max_length, (int, np.integer))
            or not 1 <= max_length <= limit
        ):
            raise ValueError(
                f"`max_length` must be an int in [1, {limit}] (the model's "
                f"`{name}`). Received: max_length={max_length!r}"
            )
        return int(max_length) + 1

    def _generate_batched(self, inputs, batch_size, **settings):
        """Runs the compiled function on `inputs` (tuple of checked arrays) in chunks.

        The last chunk is padded by repeating its last row, so one compiled
        function serves every chunk. Every setting is checked first; with no
        rows the result is an empty int32 `(0, max_length)` array and
        nothing is traced.
        """
        batch_size = check_batch_size(batch_size)
        function = self.make_generate_function(**settings)  # checks; traces nothing yet
        length = self._check_max_length(settings.get("max_length")) - 1
        empty = np.zeros((0, length), "int32")
        return run_in_batches(function, inputs, batch_size, empty).astype("int32")
