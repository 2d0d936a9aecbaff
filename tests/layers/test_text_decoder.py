import keras
import numpy as np
from keras import ops

from mmzoo.layers import TextDecoder
from mmzoo.testing import TestCase


class TextDecoderTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.RandomState(0)
        self.init_kwargs = {
            "vocabulary_size": 20,
            "sequence_length": 6,
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 8,
            "intermediate_dim": 16,
        }
        self.input_data = {
            "token_ids": rng.randint(0, 20, size=(2, 6)).astype("int32"),
            "memory": rng.randn(2, 5, 8).astype("float32"),
            "padding_mask": np.array([[1, 1, 1, 1, 0, 0], [1] * 6], bool),
            "memory_padding_mask": np.array([[1, 1, 1, 0, 0], [1] * 5], bool),
        }

    def test_layer_basics(self):
        self.run_layer_test(
            cls=TextDecoder,
            init_kwargs=self.init_kwargs,
            input_data=self.input_data,
            expected_output_shape=(2, 6, 20),
            run_mixed_precision_check=False,  # logits stay float32: own test below
        )

    def test_mixed_precision_gives_float32_logits(self):
        layer = TextDecoder(**self.init_kwargs, dtype="mixed_bfloat16")
        logits = layer(**self.input_data)
        self.assertEqual(keras.backend.standardize_dtype(logits.dtype), "float32")
        self.assertEqual(layer.decoder_blocks[0].compute_dtype, "bfloat16")
        for weight in layer.weights:
            self.assertEqual(weight.dtype, "float32", msg=weight.path)

    def test_attention_is_causal(self):
        layer = TextDecoder(**self.init_kwargs)
        data = {k: self.input_data[k] for k in ("token_ids", "memory")}
        base = np.asarray(layer(**data))
        changed = dict(data, token_ids=data["token_ids"].copy())
        changed["token_ids"][:, -1] = (changed["token_ids"][:, -1] + 1) % 20
        out = np.asarray(layer(**changed))
        self.assertAllClose(out[:, :-1], base[:, :-1], atol=1e-5)
        self.assertGreater(np.abs(out[:, -1] - base[:, -1]).max(), 1e-4)

    def test_memory_padding_is_ignored(self):
        layer = TextDecoder(**self.init_kwargs)
        base = layer(**self.input_data)
        changed = dict(self.input_data, memory=self.input_data["memory"].copy())
        changed["memory"][0, 3:] = 50.0
        self.assertAllClose(layer(**changed), base, atol=1e-5)

    def test_cached_steps_equal_the_whole_sequence(self):
        # Decoding one position at a time against the caches gives the
        # teacher-forced logits of every position.
        layer = TextDecoder(**self.init_kwargs)
        token_ids = self.input_data["token_ids"]
        memory = ops.convert_to_tensor(self.input_data["memory"])
        memory_mask = self.input_data["memory_padding_mask"]
        expected = np.asarray(layer(token_ids, memory, memory_padding_mask=memory_mask))
        self_cache, cross_cache = layer.build_cache(memory, 6, memory_padding_mask=memory_mask)
        self.assertEqual(tuple(self_cache.shape), (2, 2, 2, 6, 2, 4))
        self.assertEqual(tuple(cross_cache.shape), (2, 2, 2, 5, 2, 4))
        self.assertAllClose(self_cache, np.zeros(self_cache.shape))
        # The cross cache holds each block's keys and values of the memory.
        attention = layer.decoder_blocks[1]._cross_attention_layer
        self.assertAllClose(cross_cache[:, 1, 0], attention._key_dense(memory), atol=1e-5)
        self.assertAllClose(cross_cache[:, 1, 1], attention._value_dense(memory), atol=1e-5)
        for index in range(6):
            logits, hidden, self_cache = layer.call_with_cache(
                token_ids[:, index : index + 1], index, self_cache, cross_cache, memory,
                memory_padding_mask=memory_mask,
            )
            self.assertEqual(tuple(hidden.shape), (2, 8))
            self.assertAllClose(logits, expected[:, index], atol=1e-4)

    def test_cross_attention_scores_are_the_weights_the_block_uses(self):
        layer = TextDecoder(**self.init_kwargs)
        d = self.input_data
        scores = np.asarray(
            layer.cross_attention_scores(
                d["token_ids"], d["memory"], d["padding_mask"], d["memory_padding_mask"]
            )
        )
        self.assertEqual(scores.shape, (2, 2, 6, 5))
        self.assertAllClose(scores.sum(-1), np.ones((2, 2, 6)), atol=1e-5)
        self.assertAllClose(scores[0, :, :, 3:], np.zeros((2, 6, 2)), atol=1e-6)
        # The last block's output, rebuilt from those weights, equals the
        # block's own output.
        first, block = layer.decoder_blocks
        x = first(layer.token_embedding(d["token_ids"]), d["memory"],
                  decoder_padding_mask=d["padding_mask"],
                  encoder_padding_mask=d["memory_padding_mask"])
        mask = block._compute_self_attention_mask(x, d["padding_mask"], None, True, None, None)
        h = block._self_attention_layer_norm(x)
        h = x + block._self_attention_layer(query=h, value=h, attention_mask=mask)
        attention = block._cross_attention_layer
        value = np.asarray(attention._value_dense(d["memory"]))
        y = h + attention._output_dense(np.einsum("bhtn,bnhd->bthd", scores, value))
        y = y + block._feedforward_output_dense(
            block._feedforward_intermediate_dense(block._feedforward_layer_norm(y))
        )
        self.assertAllClose(
            y,
            block(x, d["memory"], decoder_padding_mask=d["padding_mask"],
                  encoder_padding_mask=d["memory_padding_mask"]),
            atol=1e-5,
        )

    def test_saving(self):
        token_ids = keras.Input((6,), dtype="int32")
        memory = keras.Input((5, 8))
        mask = keras.Input((6,), dtype="bool")
        out = TextDecoder(**self.init_kwargs)(token_ids, memory, padding_mask=mask)
        model = keras.Model([token_ids, memory, mask], out)
        d = self.input_data
        self.run_model_saving_test(model, [d["token_ids"], d["memory"], d["padding_mask"]])

    def test_heads_must_divide_hidden_dim(self):
        with self.assertRaisesRegex(ValueError, r"divisible by `num_heads` \(3\).*Received: hidden_dim=8"):
            TextDecoder(**{**self.init_kwargs, "num_heads": 3})

    def test_memory_must_have_hidden_dim(self):
        with self.assertRaisesRegex(ValueError, r"hidden_dim=8.*Received: memory shape \(2, 5, 4\)"):
            TextDecoder(**self.init_kwargs)(self.input_data["token_ids"], np.zeros((2, 5, 4), "float32"))

    def test_bad_sizes(self):
        with self.assertRaisesRegex(ValueError, "Received: vocabulary_size=0"):
            TextDecoder(**{**self.init_kwargs, "vocabulary_size": 0})
