import functools

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from mmzoo import presets
from mmzoo.encoders import build_text_encoder
from mmzoo.encoders import build_vit_image_encoder
from mmzoo.models import FUSION_TYPES
from mmzoo.models import FusionClassifier
from mmzoo.models import build_fusion_classifier
from mmzoo.models import classification_split
from mmzoo.models.fusion_classifier import GatedModalityUnit
from mmzoo.models.fusion_classifier import SequenceMask
from mmzoo.models.fusion_classifier import WeightedLogitAverage
from mmzoo.testing import TestCase
from mmzoo.training import get_strategy


def image_encoder(dtype=None, name="vit_image_encoder"):
    return build_vit_image_encoder(
        image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2,
        hidden_dim=16, intermediate_dim=32, dtype=dtype, name=name,
    )


def text_encoder(dtype=None, name="text_encoder"):
    return build_text_encoder(
        vocabulary_size=20, sequence_length=6, num_layers=1, num_heads=2,
        hidden_dim=16, intermediate_dim=32, dtype=dtype, name=name,
    )


def encoders(dtype=None):
    return {"image": image_encoder(dtype), "text": text_encoder(dtype)}


INIT_KWARGS = {
    "num_classes": 3,
    "hidden_dim": 8,
    "num_heads": 2,
    "num_layers": 1,
    "intermediate_dim": 16,
    "dropout_rate": 0.0,
}


class FusionClassifierTest(TestCase, parameterized.TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.RandomState(0)
        self.input_data = {
            "images": rng.rand(3, 16, 16, 3).astype("float32"),
            "token_ids": rng.randint(4, 20, (3, 6)).astype("int32"),
            "padding_mask": np.array(
                [[1, 1, 1, 0, 0, 0], [1] * 6, [1, 1, 0, 0, 0, 0]], bool
            ),
        }

    def builder(self, fusion, dtype=None, **kwargs):
        return build_fusion_classifier(encoders(dtype), fusion=fusion, dtype=dtype, **kwargs)

    @parameterized.parameters(*FUSION_TYPES)
    def test_builder_basics(self, fusion):
        model = self.run_model_builder_test(
            functools.partial(self.builder, fusion), INIT_KWARGS, self.input_data, (3, 3),
            run_mixed_precision_check=False,
        )
        self.assertIsInstance(model, FusionClassifier)
        self.assertEqual(sorted(model.input), ["images", "padding_mask", "token_ids"])
        self.assertEqual(model.modalities, ("image", "text"))

    @parameterized.parameters(*FUSION_TYPES)
    def test_saving(self, fusion):
        model = self.builder(fusion, **INIT_KWARGS)
        restored = self.run_model_saving_test(model, self.input_data)
        self.assertEqual(restored.fusion, fusion)
        self.assertEqual(restored.input_keys, model.input_keys)

    def test_mixed_precision_logits_stay_float32(self):
        for fusion in FUSION_TYPES:
            model = self.builder(fusion, dtype="mixed_bfloat16", **INIT_KWARGS)
            block = model.get_layer("text_encoder").get_layer("transformer_block_0")
            self.assertEqual(block.compute_dtype, "bfloat16")
            for w in model.weights:
                self.assertEqual(w.dtype, "float32", msg=f"{fusion}: {w.path}")
            logits = model(self.input_data)
            self.assertEqual(keras.backend.standardize_dtype(logits.dtype), "float32", msg=fusion)

    @parameterized.parameters("early", "attention", "gated")
    def test_padding_is_ignored(self, fusion):
        # Tokens under padding, and the padded positions' ids, change nothing.
        model = self.builder(fusion, **INIT_KWARGS)
        base = np.asarray(model(self.input_data))
        changed = dict(self.input_data, token_ids=self.input_data["token_ids"].copy())
        changed["token_ids"][~self.input_data["padding_mask"]] = 19
        self.assertAllClose(np.asarray(model(changed)), base, atol=1e-5)
        # A real token does change the prediction.
        changed["token_ids"][:, 0] = 19
        self.assertGreater(np.abs(np.asarray(model(changed)) - base).max(), 1e-4)

    def test_attention_uses_both_modalities(self):
        model = self.builder("attention", **INIT_KWARGS)
        base = np.asarray(model(self.input_data))
        images = dict(self.input_data, images=self.input_data["images"][::-1])
        self.assertGreater(np.abs(np.asarray(model(images)) - base[::-1]).max(), 1e-4)
        block = model.get_layer("image_fusion_block_0")
        self.assertIs(model.fusion_blocks["image"][0], block)
        self.assertIn("text_fusion_block_0", [l.name for l in model.layers])

    def test_late_modality_weights(self):
        model = self.builder("late", **INIT_KWARGS)
        self.assertEqual(model.modality_weights(), {"image": 0.5, "text": 0.5})
        average = model.get_layer("logit_average")
        average.modality_logits.assign([np.log(3.0), 0.0])
        self.assertAllClose(list(model.modality_weights().values()), [0.75, 0.25])
        # The output is that weighted mean of the two heads' logits.
        image_logits = keras.Model(model.input, model.get_layer("image_classifier_head").output)
        text_logits = keras.Model(model.input, model.get_layer("text_classifier_head").output)
        expected = 0.75 * np.asarray(image_logits(self.input_data)) + 0.25 * np.asarray(
            text_logits(self.input_data)
        )
        self.assertAllClose(np.asarray(model(self.input_data)), expected, atol=1e-5)
        with self.assertRaisesRegex(ValueError, "only for late fusion. Received: fusion='early'"):
            self.builder("early", **INIT_KWARGS).modality_weights()

    @parameterized.parameters(*FUSION_TYPES)
    def test_single_modality(self, fusion):
        model = build_fusion_classifier({"image": image_encoder()}, fusion=fusion, **INIT_KWARGS)
        self.assertEqual(list(model.input), ["images"])
        logits = model({"images": self.input_data["images"]})
        self.assertEqual(tuple(logits.shape), (3, 3))
        text_only = build_fusion_classifier({"text": text_encoder()}, fusion=fusion, **INIT_KWARGS)
        self.assertEqual(sorted(text_only.input), ["padding_mask", "token_ids"])

    def test_plain_keras_encoders(self):
        # One encoder returns features (batch, dim), the other tokens
        # (batch, length, dim); the unnamed input is keyed by its modality.
        audio_in = keras.Input((10, 4))
        audio = keras.Model(audio_in, keras.layers.Dense(8)(audio_in), name="audio_encoder")
        meta_in = keras.Input((5,), name="metadata")
        meta = keras.Model(meta_in, keras.layers.Dense(6)(meta_in), name="meta_encoder")
        x = {"audio": np.random.rand(2, 10, 4).astype("float32"),
             "metadata": np.random.rand(2, 5).astype("float32")}
        for fusion in FUSION_TYPES:
            model = build_fusion_classifier(
                {"audio": audio, "meta": meta}, fusion=fusion, **INIT_KWARGS
            )
            self.assertEqual(model.input_keys, {"audio": {"audio": "audio"},
                                                "meta": {"metadata": "metadata"}})
            self.assertEqual(tuple(model(x).shape), (2, 3), msg=fusion)
        self.run_model_saving_test(model, x)  # the last one: gated

    def test_colliding_inputs_are_prefixed(self):
        model = build_fusion_classifier(
            {"question": text_encoder(name="question_encoder"),
             "context": text_encoder(name="context_encoder"),
             "image": image_encoder()},
            fusion="attention", **INIT_KWARGS,
        )
        self.assertEqual(
            sorted(model.input),
            ["context_padding_mask", "context_token_ids", "images",
             "question_padding_mask", "question_token_ids"],
        )
        x = {"images": self.input_data["images"]}
        for prefix in ("question", "context"):
            x[f"{prefix}_token_ids"] = self.input_data["token_ids"]
            x[f"{prefix}_padding_mask"] = self.input_data["padding_mask"]
        base = np.asarray(model(x))
        # Three modalities: the image's context is both texts, whose padding
        # is still never attended to.
        changed = dict(x, context_token_ids=x["context_token_ids"].copy())
        changed["context_token_ids"][~x["context_padding_mask"]] = 19
        self.assertAllClose(np.asarray(model(changed)), base, atol=1e-5)

    def test_frozen_encoder(self):
        frozen = image_encoder()
        frozen.trainable = False
        model = build_fusion_classifier({"image": frozen, "text": text_encoder()}, **INIT_KWARGS)
        frozen_ids = {id(w) for w in frozen.weights}
        self.assertFalse(frozen_ids & {id(w) for w in model.trainable_weights})

    def test_learns_separable_task(self):
        # Label = whether the image is bright, with text as noise: trivially
        # separable, so a few dozen Adam steps must fit it.
        rng = np.random.RandomState(1)
        labels = np.arange(16) % 2
        images = rng.rand(16, 16, 16, 3) * 0.5 + 0.5 * labels[:, None, None, None]
        x = {"images": images.astype("float32"),
             "token_ids": rng.randint(4, 20, (16, 6)).astype("int32"),
             "padding_mask": np.ones((16, 6), bool)}
        model = self.builder("early", **{**INIT_KWARGS, "num_classes": 2})
        model.compile(
            optimizer=keras.optimizers.Adam(1e-2),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=False,  # XLA compilation would cost more than the 20 steps
        )
        history = model.fit(x, labels, batch_size=16, epochs=20, verbose=0)
        self.assertLess(history.history["loss"][-1], 0.5 * history.history["loss"][0])
        predictions = np.argmax(np.asarray(model(x)), axis=-1)
        self.assertAllEqual(predictions, labels)

    def test_class_weight_in_fit(self):
        # One full-batch step: Keras reports the loss at the initial weights,
        # mean(weight[label] * cross-entropy), and the step moves the
        # prediction further towards the up-weighted class.
        labels = np.array([0, 0, 1], "int32")
        model = self.builder("early", **{**INIT_KWARGS, "num_classes": 2})
        initial = [w.numpy() for w in model.weights]
        logits = np.asarray(model(self.input_data), "float64")
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        per_example = -log_probs[np.arange(3), labels]

        def one_step(class_weight):
            model.set_weights(initial)
            model.compile(
                optimizer=keras.optimizers.SGD(0.1),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
            history = model.fit(
                self.input_data, labels, batch_size=3, epochs=1, verbose=0,
                class_weight=class_weight,
            )
            probs = keras.ops.softmax(model(self.input_data))
            return history.history["loss"][0], float(np.mean(np.asarray(probs)[:, 1]))

        loss_plain, p_plain = one_step(None)
        loss_weighted, p_weighted = one_step({0: 1.0, 1: 10.0})
        self.assertAllClose(loss_plain, per_example.mean(), rtol=1e-4)
        self.assertAllClose(loss_weighted, np.mean(per_example * [1.0, 1.0, 10.0]), rtol=1e-4)
        self.assertGreater(p_weighted, p_plain)

    def test_classification_split(self):
        features = {**self.input_data, "labels": np.array([2, 0, 1], "int32")}
        ds = tf.data.Dataset.from_tensors(features)
        x, y = next(iter(ds.map(classification_split)))
        self.assertEqual(sorted(x), ["images", "padding_mask", "token_ids"])
        self.assertEqual(x["padding_mask"].dtype, tf.int32)
        self.assertAllEqual(y, [2, 0, 1])
        weighted = functools.partial(classification_split, class_weights=[1.0, 2.0, 5.0])
        x, y, w = next(iter(ds.map(weighted)))
        self.assertAllClose(w, [5.0, 1.0, 2.0])
        _, _, w = classification_split(features, class_weights={2: 3.0})
        self.assertAllClose(w, [3.0, 1.0, 1.0])
        # The int32 mask is read as the bool mask.
        model = self.builder("attention", **INIT_KWARGS)
        self.assertAllClose(model(x), model(self.input_data), atol=1e-6)
        with self.assertRaisesRegex(ValueError, r"Received: class_weights=\[1.0, -1.0\]"):
            classification_split(features, class_weights=[1.0, -1.0])
        with self.assertRaisesRegex(ValueError, "must hold `labels`"):
            classification_split(self.input_data)

    @pytest.mark.slow
    def test_fit_under_mirrored_strategy(self):
        strategy = get_strategy("mirrored")
        with strategy.scope():
            model = self.builder("gated", **INIT_KWARGS)
            # XLA cannot read a variable placed on another (logical) device
            # inside model.fit's distributed step (see the captioning tests).
            model.compile(
                optimizer="adam",
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=False,
            )
        features = {k: np.concatenate([v, v[:1]]) for k, v in self.input_data.items()}
        features["labels"] = np.array([0, 1, 2, 0], "int32")
        ds = tf.data.Dataset.from_tensor_slices(features).batch(4).map(classification_split)
        history = model.fit(ds.repeat(), steps_per_epoch=10, epochs=2, verbose=0)
        losses = history.history["loss"]
        self.assertTrue(np.all(np.isfinite(losses)))
        self.assertLess(losses[1], losses[0])

    def test_tiny_preset(self):
        model = presets.build_from_preset("fusion_classifier_tiny")
        self.assertIn("fusion_classifier_tiny", presets.list_presets(family="fusion_classifier"))
        self.assertEqual(model.fusion, "attention")
        self.assertLess(model.count_params(), 500_000)
        self.assertEqual(tuple(model.input["images"].shape), (None, 64, 64, 3))
        x = {"images": np.random.rand(2, 64, 64, 3).astype("float32"),
             "token_ids": np.random.randint(0, 512, (2, 16)).astype("int32"),
             "padding_mask": np.ones((2, 16), bool)}
        self.assertEqual(tuple(model(x).shape), (2, 2))
        gated = presets.build_from_preset("fusion_classifier_tiny", fusion="gated", num_classes=5)
        self.assertEqual(tuple(gated(x).shape), (2, 5))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, r"at least one.*Received: encoders=\{\}"):
            build_fusion_classifier({}, num_classes=2)
        with self.assertRaisesRegex(ValueError, "must be a dict.*Received: encoders=\\["):
            build_fusion_classifier([image_encoder()], num_classes=2)
        with self.assertRaisesRegex(
            ValueError, r"`fusion` must be one of \['attention', 'early', 'gated', 'late'\]. "
            r"Received: fusion='middle'"
        ):
            self.builder("middle", **INIT_KWARGS)
        for bad in (1, 0, 2.0, True):
            with self.assertRaisesRegex(ValueError, f"Received: num_classes={bad!r}"):
                self.builder("early", **{**INIT_KWARGS, "num_classes": bad})
        with self.assertRaisesRegex(ValueError, "Received: hidden_dim=8"):
            self.builder("attention", **{**INIT_KWARGS, "num_heads": 3})
        with self.assertRaisesRegex(ValueError, r"encoders\['image'\]` must be a keras.Model"):
            build_fusion_classifier({"image": 3}, num_classes=2)
        with self.assertRaisesRegex(ValueError, "Received: modality='an image'"):
            build_fusion_classifier({"an image": image_encoder()}, num_classes=2)
        with self.assertRaisesRegex(ValueError, "distinct `name=`"):
            build_fusion_classifier({"a": image_encoder(), "b": image_encoder()}, num_classes=2)
        with self.assertRaisesRegex(ValueError, "Unknown preset"):
            build_fusion_classifier({"image": "vit_image_encoder_huge"}, num_classes=2)
        inputs = keras.Input((4,))
        dict_out = keras.Model(inputs, {"features": keras.layers.Dense(2)(inputs)})
        with self.assertRaisesRegex(ValueError, r"Received: outputs \['features'\]"):
            build_fusion_classifier({"x": dict_out}, num_classes=2)


class FusionLayersTest(TestCase):
    def test_weighted_logit_average(self):
        self.run_layer_test(
            cls=WeightedLogitAverage,
            init_kwargs={},
            input_data=[np.random.rand(2, 3).astype("float32"),
                        np.random.rand(2, 3).astype("float32")],
            expected_output_shape=(2, 3),
            expected_num_trainable_weights=1,
        )
        layer = WeightedLogitAverage()
        out = layer([np.zeros((1, 2), "float32"), np.full((1, 2), 4.0, "float32")])
        self.assertAllClose(out, [[2.0, 2.0]])

    def test_gated_modality_unit(self):
        inputs = [np.random.rand(2, 4).astype("float32"), np.random.rand(2, 6).astype("float32")]
        self.run_layer_test(
            cls=GatedModalityUnit,
            init_kwargs={"hidden_dim": 8},
            input_data=inputs,
            expected_output_shape=(2, 8),
            expected_num_trainable_weights=6,
        )
        unit = GatedModalityUnit(hidden_dim=8)
        outputs, gates = unit(inputs, return_gates=True)
        self.assertEqual(tuple(gates.shape), (2, 2, 8))
        # The output is the gated sum of the two modalities' tanh features.
        features = [np.asarray(d(x)) for d, x in zip(unit.feature_denses, inputs)]  # tanh Dense
        gates = np.asarray(gates)
        self.assertAllClose(outputs, gates[:, 0] * features[0] + gates[:, 1] * features[1], atol=1e-6)
        with self.assertRaisesRegex(ValueError, "Received: hidden_dim=0"):
            GatedModalityUnit(hidden_dim=0)

    def test_sequence_mask(self):
        mask = SequenceMask()(np.zeros((2, 5, 3), "float32"))
        self.assertAllEqual(mask, np.ones((2, 5), bool))
        self.assertEqual(SequenceMask().compute_output_shape((None, 5, 3)), (None, 5))
