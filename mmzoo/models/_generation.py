"""Cached, XLA-compiled text generation shared by the model families that write text.

`CachedTextGeneration` is a mixin for a `keras.Model` whose text is written
by a `mmzoo.layers.TextDecoder` cross-attending to a "memory" sequence (image
tokens for captioning; fused video-and-question tokens for video QA). It
decodes inside one XLA-compiled while loop over a fixed-length buffer
(keras-hub samplers), with a self-attention key/value cache and the
cross-attention keys and values computed once per input
(`TextDecoder.build_cache`); compiled functions are cached per setting, so
repeated calls with the same shapes do not retrace (`generate_trace_count`
counts the traces).

A model using it sets, in its constructor:

- `text_decoder` (a `mmzoo.layers.TextDecoder`);
- `vocabulary_size`, `start_token_id`, `end_token_id`, `pad_token_id`;
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

    def _generation_memory(self, *inputs):  # pragma: no cover - abstract
        raise NotImplementedError

    def _generation_sequence_length(self):  # pragma: no cover - abstract
        raise NotImplementedError

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
        self_cache, cross_cache = self.text_decoder.build_cache(
            memory, max_length, memory_padding_mask=memory_mask
        )
        # Only the self-attention cache changes from step to step. The beam
        # sampler runs `num_beams` rows per example (example-major, as
        # `ops.repeat` lays them out) and gathers every entry of its cache at
        # every step; the cross-attention cache and the memory are the same
        # for every row of an example, so they are repeated once here and
        # kept out of the sampler's cache (with them inside, beam search at
        # batch 8 of `image_captioning_small` copied 87 MB per token).
        rows = getattr(sampler, "num_beams", 1)
        constant = (cross_cache, memory, memory_mask)
        if rows > 1:
            constant = tuple(
                None if x is None else ops.repeat(x, rows, axis=0) for x in constant
            )
        cross_cache, memory, memory_mask = constant

        # Padding and the start token are never generated (unless one of
        # them is also the end token, which must stay possible).
        banned = np.zeros((self.vocabulary_size,), "float32")
        banned_ids = {self.pad_token_id, self.start_token_id} - {self.end_token_id, None}
        banned[sorted(banned_ids)] = -1e9

        def next_fn(prompt, cache, index):
            num_samples = ops.shape(prompt)[0]
            token = ops.slice(prompt, [0, index - 1], [num_samples, 1])
            logits, hidden, cache = self.text_decoder.call_with_cache(
                token, index - 1, cache, cross_cache, memory, memory_padding_mask=memory_mask,
            )
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
            cache=self_cache,
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

            # No AutoGraph: keras-hub's samplers loop with `ops.while_loop`,
            # and converting the decoder's source costs seconds per trace.
            function = tf.function(generate_step, jit_compile=jit_compile, autograph=False)
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
