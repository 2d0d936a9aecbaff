import keras
import numpy as np
import tensorflow as tf

from mmzoo.data import TextTokenizer
from mmzoo.encoders import build_vit_image_encoder
from mmzoo.losses import MaskedSequenceCrossEntropy
from mmzoo.models import ImageCaptioningModel
from mmzoo.models import ImageCaptioningPreprocessor
from mmzoo.models import build_image_captioning_model
from mmzoo.models import teacher_forcing_split
from mmzoo.testing import TestCase
from mmzoo.training import Trainer
from mmzoo.training import get_strategy


def tiny_encoder(dtype=None, trainable=True):
    encoder = build_vit_image_encoder(
        image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2,
        hidden_dim=16, intermediate_dim=32, dtype=dtype,
    )
    encoder.trainable = trainable
    return encoder


def reference_greedy(model, images, max_length):
    """Reruns the whole model on the growing caption for every new token."""
    batch = len(images)
    length = model.sequence_length
    tokens = np.full((batch, length), model.pad_token_id, "int32")
    tokens[:, 0] = model.start_token_id
    done = np.zeros(batch, bool)
    for t in range(1, max_length + 1):
        logits = model(
            {"images": images, "token_ids": tokens, "padding_mask": np.ones_like(tokens, bool)}
        )
        step_logits = np.asarray(logits)[:, t - 1].copy()
        step_logits[:, [model.pad_token_id, model.start_token_id]] = -np.inf
        next_token = np.argmax(step_logits, axis=-1)
        next_token = np.where(done, model.pad_token_id, next_token)
        if t < length:
            tokens[:, t] = next_token
        else:
            tokens = np.concatenate([tokens, next_token[:, None]], axis=1)
        done |= next_token == model.end_token_id
    return tokens[:, 1 : max_length + 1]


class ImageCaptioningModelTest(TestCase):
    def setUp(self):
        super().setUp()
        self.init_kwargs = {
            "vocabulary_size": 12,
            "sequence_length": 6,
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 8,
            "intermediate_dim": 16,
            "dropout_rate": 0.0,
        }
        rng = np.random.RandomState(0)
        self.images = rng.rand(3, 16, 16, 3).astype("float32")
        self.input_data = {
            "images": self.images,
            "token_ids": np.array(
                [[2, 5, 6, 3, 0, 0], [2, 7, 7, 7, 8, 3], [2, 9, 3, 0, 0, 0]], "int32"
            ),
            "padding_mask": np.array(
                [[1, 1, 1, 1, 0, 0], [1] * 6, [1, 1, 1, 0, 0, 0]], bool
            ),
        }

    def builder(self, dtype=None, **kwargs):
        return build_image_captioning_model(tiny_encoder(dtype), dtype=dtype, **kwargs)

    def test_builder_basics(self):
        model = self.run_model_builder_test(
            self.builder, self.init_kwargs, self.input_data, (3, 6, 12),
            run_mixed_precision_check=False,
        )
        self.assertIsInstance(model, ImageCaptioningModel)

    def test_mixed_precision_logits_stay_float32(self):
        model = self.builder(dtype="mixed_bfloat16", **self.init_kwargs)
        self.assertEqual(model.text_decoder.decoder_blocks[0].compute_dtype, "bfloat16")
        self.assertEqual(keras.backend.standardize_dtype(model(self.input_data).dtype), "float32")
        self.assertEqual(model.generate(self.images, max_length=4).shape, (3, 4))

    def test_causal(self):
        model = self.builder(**self.init_kwargs)
        base = np.asarray(model(self.input_data))
        changed = dict(self.input_data, token_ids=self.input_data["token_ids"].copy())
        changed["token_ids"][:, 3] = 11
        out = np.asarray(model(changed))
        self.assertAllClose(out[:, :3], base[:, :3], atol=1e-5)
        self.assertGreater(np.abs(out[:, 3:] - base[:, 3:]).max(), 1e-4)

    def test_saving(self):
        model = self.builder(**self.init_kwargs)
        restored = self.run_model_saving_test(model, self.input_data)
        self.assertEqual(restored.sequence_length, 6)
        self.assertAllEqual(restored.generate(self.images), model.generate(self.images))

    def test_fit_with_teacher_forcing(self):
        model = self.builder(**{**self.init_kwargs, "sequence_length": 5})
        model.compile(
            optimizer=keras.optimizers.Adam(1e-2),
            loss=MaskedSequenceCrossEntropy(),
            jit_compile=True,
        )
        ds = tf.data.Dataset.from_tensor_slices(self.input_data).batch(3).map(teacher_forcing_split)
        x, y = next(iter(ds))
        self.assertEqual(tuple(x["token_ids"].shape), (3, 5))
        self.assertAllEqual(y[0], [5, 6, 3, 0, 0])
        history = model.fit(ds.repeat(), steps_per_epoch=30, epochs=1, verbose=0)
        first = model.evaluate(ds, verbose=0)
        self.assertLess(first, history.history["loss"][0])  # it learns the captions
        # The three training captions are memorised: greedy decoding writes them.
        generated = model.generate(self.images, max_length=5)
        self.assertAllEqual(generated[0, :3], [5, 6, 3])

    def test_fit_under_mirrored_strategy(self):
        # mmzoo's strategy cache: two MirroredStrategy objects in one process
        # collide on TensorFlow's collective keys.
        strategy = get_strategy("mirrored")
        with strategy.scope():
            model = self.builder(**{**self.init_kwargs, "sequence_length": 5})
            # model.fit compiles the whole distributed step; XLA cannot read a
            # variable placed on another (logical) device, so no jit_compile
            # here. mmzoo.training.Trainer compiles the per-replica step instead.
            model.compile(optimizer="adam", loss=MaskedSequenceCrossEntropy(), jit_compile=False)
        data = {k: np.concatenate([v, v[:1]]) for k, v in self.input_data.items()}  # 4 examples
        ds = tf.data.Dataset.from_tensor_slices(data).batch(4).map(teacher_forcing_split)
        history = model.fit(ds.repeat(), steps_per_epoch=20, epochs=2, verbose=0)
        losses = history.history["loss"]
        self.assertTrue(np.all(np.isfinite(losses)))
        self.assertLess(losses[1], losses[0])
        # The Keras variable wraps a MirroredVariable: one copy per device.
        replica_kernels = model.text_decoder.logits_dense.kernel.value.values
        self.assertLen(replica_kernels, 2)
        self.assertAllClose(replica_kernels[0], replica_kernels[1])

    def test_cross_attention_scores(self):
        model = self.builder(**self.init_kwargs)
        x = self.input_data
        scores = np.asarray(
            model.cross_attention_scores(x["images"], x["token_ids"], x["padding_mask"])
        )
        self.assertEqual(scores.shape, (3, 2, 6, 4))  # 2 heads, 4 patches
        self.assertAllClose(scores.sum(-1), np.ones((3, 2, 6)), atol=1e-5)
        # These are the weights the block really uses: its cross-attention
        # output equals the weighted sum of its values.
        block = model.text_decoder.decoder_blocks[-1]
        attention = block._cross_attention_layer
        image_tokens = model.encode_images(x["images"])
        first = model.text_decoder.decoder_blocks[0](
            model.text_decoder.token_embedding(x["token_ids"]), image_tokens, decoder_padding_mask=x["padding_mask"]
        )
        mask = block._compute_self_attention_mask(first, x["padding_mask"], None, True, None, None)
        h = block._self_attention_layer_norm(first)
        h = first + block._self_attention_layer(query=h, value=h, attention_mask=mask)
        query = block._cross_attention_layer_norm(h)
        expected = attention(query=query, value=image_tokens)
        value = np.asarray(attention._value_dense(image_tokens))
        mixed = np.einsum("bhtn,bnhd->bthd", scores, value)
        self.assertAllClose(attention._output_dense(mixed), expected, atol=1e-5)
        # And the block output follows from that cross-attention output.
        y = h + expected
        y = y + block._feedforward_output_dense(
            block._feedforward_intermediate_dense(block._feedforward_layer_norm(y))
        )
        self.assertAllClose(y, block(first, image_tokens, decoder_padding_mask=x["padding_mask"]), atol=1e-5)

    def test_trainer_under_mirrored_strategy_with_xla(self):
        # The Trainer compiles each replica's step with XLA and all-reduces
        # outside it, which model.fit cannot do on logical CPU devices.
        kwargs = {**self.init_kwargs, "sequence_length": 5}
        data = {k: np.concatenate([v, v[:1]]) for k, v in self.input_data.items()}
        ds = tf.data.Dataset.from_tensor_slices(data).batch(4, drop_remainder=True)
        ds = ds.map(teacher_forcing_split).repeat()
        trainer = Trainer(
            model_fn=lambda: self.builder(**kwargs),
            loss=MaskedSequenceCrossEntropy(),
            optimizer=keras.optimizers.Adam(1e-2),
            strategy=get_strategy("mirrored"),
        )
        rows = trainer.fit(ds, steps=20, log_every=10, verbose=0)
        self.assertLess(rows[-1]["loss"], rows[0]["loss"])

    def test_frozen_image_encoder(self):
        model = build_image_captioning_model(tiny_encoder(trainable=False), **self.init_kwargs)
        encoder_ids = {id(w) for w in model.image_encoder.weights}
        self.assertFalse(encoder_ids & {id(w) for w in model.trainable_weights})

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "Received: hidden_dim=8"):
            self.builder(**{**self.init_kwargs, "num_heads": 3})
        with self.assertRaisesRegex(ValueError, "Received: end_token_id=12"):
            self.builder(**self.init_kwargs, end_token_id=12)
        inputs = keras.Input((16, 16, 3))
        pooled_only = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
        with self.assertRaisesRegex(ValueError, "`sequence_output`.*Received: outputs KerasTensor"):
            build_image_captioning_model(pooled_only, **self.init_kwargs)


class GenerationTest(TestCase):
    def setUp(self):
        super().setUp()
        self.model = build_image_captioning_model(
            tiny_encoder(), vocabulary_size=12, sequence_length=6, num_layers=2,
            num_heads=2, hidden_dim=8, intermediate_dim=16, dropout_rate=0.0,
        )
        self.images = np.random.RandomState(1).rand(4, 16, 16, 3).astype("float32")

    def test_cached_greedy_equals_full_rerun(self):
        for max_length in (3, 6):
            expected = reference_greedy(self.model, self.images, max_length)
            self.assertAllEqual(self.model.generate(self.images, max_length=max_length), expected)

    def test_cached_greedy_equals_full_rerun_with_end_tokens(self):
        # Raise the end token's bias until some rows stop early and others not.
        bias = self.model.text_decoder.logits_dense.bias
        for boost in np.linspace(0.0, 5.0, 21):
            bias.assign(np.where(np.arange(12) == 3, boost, 0.0).astype("float32"))
            expected = reference_greedy(self.model, self.images, 6)
            ended = np.any(expected == 3, axis=1)
            if ended.any() and not ended.all():
                break
        self.assertTrue(ended.any() and not ended.all(), msg=str(expected))
        self.assertAllEqual(self.model.generate(self.images), expected)

    def test_tokens_after_end_are_padding(self):
        bias = self.model.text_decoder.logits_dense.bias
        bias.assign(np.where(np.arange(12) == 3, 50.0, 0.0).astype("float32"))
        tokens = self.model.generate(self.images, method="top_k", k=3, seed=0)
        self.assertAllEqual(tokens[:, 0], [3, 3, 3, 3])
        self.assertAllEqual(tokens[:, 1:], np.zeros((4, 5)))

    def test_no_retracing(self):
        self.model.generate(self.images, max_length=5)
        traces = self.model.generate_trace_count
        for _ in range(3):
            self.model.generate(self.images, max_length=5)
        self.assertEqual(self.model.generate_trace_count, traces)
        self.model.generate(self.images, max_length=5, method="beam", num_beams=2)
        self.assertEqual(self.model.generate_trace_count, traces + 1)

    def test_batching_pads_the_last_chunk(self):
        full = self.model.generate(self.images, max_length=4)
        traces = self.model.generate_trace_count
        chunked = self.model.generate(self.images[:3], max_length=4, batch_size=2)
        self.assertAllEqual(chunked, full[:3])
        self.assertEqual(self.model.generate_trace_count, traces + 1)  # one shape: batch 2

    def test_beam_search_scores_at_least_greedy(self):
        def log_prob(tokens):
            prefix = np.concatenate([np.full((4, 1), 2), tokens[:, :-1]], axis=1)
            logits = np.asarray(
                self.model({"images": self.images, "token_ids": prefix.astype("int32"),
                            "padding_mask": np.ones((4, 6), bool)})
            )
            logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
            return np.take_along_axis(logp, tokens[..., None], -1)[..., 0].sum(-1)

        # No end token in reach: every sequence has the full length.
        bias = self.model.text_decoder.logits_dense.bias
        bias.assign(np.where(np.arange(12) == 3, -100.0, 0.0).astype("float32"))
        greedy = self.model.generate(self.images, method="greedy")
        beam = self.model.generate(self.images, method="beam", num_beams=4)
        self.assertTrue(np.all(log_prob(beam) >= log_prob(greedy) - 1e-4))

    def test_beam_search_keeps_each_example_its_own_image(self):
        # Each example's beams attend to its own image tokens: a batch gives
        # the captions of its examples captioned one at a time.
        bias = self.model.text_decoder.logits_dense.bias
        bias.assign(np.where(np.arange(12) == 3, -100.0, 0.0).astype("float32"))
        batch = self.model.generate(self.images, method="beam", num_beams=3)
        alone = [self.model.generate(self.images[i:i + 1], method="beam", num_beams=3)[0]
                 for i in range(4)]
        self.assertAllEqual(batch, np.stack(alone))
        self.assertGreater(len({tuple(row) for row in batch}), 1)

    def test_sampling_is_seeded(self):
        a = self.model.generate(self.images, method="top_p", p=0.9, seed=3)
        b = self.model.generate(self.images, method="top_p", p=0.9, seed=3)
        self.assertAllEqual(a, b)

    def test_strings_with_tokenizer(self):
        vocabulary = ["[PAD]", "[UNK]", "[START]", "[END]"] + [f"w{i}" for i in range(8)]
        tokens = self.model.generate(self.images, max_length=3)
        self.model.preprocessor = ImageCaptioningPreprocessor(
            TextTokenizer(vocabulary), self.model.image_shape
        )
        captions = self.model.generate(self.images, max_length=3)
        self.assertLen(captions, 4)
        for caption, row in zip(captions, tokens):
            words = [vocabulary[i] for i in row if i != 0]
            words = words[: words.index("[END]")] if "[END]" in words else words
            self.assertEqual(caption, " ".join(words))

    def test_never_generates_pad_or_start(self):
        bias = self.model.text_decoder.logits_dense.bias
        bias.assign(np.where(np.isin(np.arange(12), [0, 2]), 50.0, 0.0).astype("float32"))
        tokens = self.model.generate(self.images)
        self.assertFalse(np.isin(tokens, [0, 2]).any())

    def test_bad_generate_arguments(self):
        with self.assertRaisesRegex(ValueError, "Received: max_length=7"):
            self.model.generate(self.images, max_length=7)
        with self.assertRaisesRegex(ValueError, "Received: method='nucleus'"):
            self.model.generate(self.images, method="nucleus")
        with self.assertRaisesRegex(ValueError, r"Received: images with shape \(4, 8, 8, 3\)"):
            self.model.generate(np.zeros((4, 8, 8, 3)))
        with self.assertRaisesRegex(ValueError, "Received: p=1.5"):
            self.model.generate(self.images, method="top_p", p=1.5)
