import functools
import json
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from mmzoo import presets
from mmzoo.data import TextTokenizer
from mmzoo.encoders import build_text_encoder
from mmzoo.encoders import build_vit_image_encoder
from mmzoo.models import FUSION_TYPES
from mmzoo.models import FusionClassifier
from mmzoo.models import build_fusion_classifier
from mmzoo.models import classification_split
from mmzoo.models.fusion_classifier import FusionClassifierPreprocessor
from mmzoo.models.fusion_classifier import GatedModalityUnit
from mmzoo.models.fusion_classifier import SequenceMask
from mmzoo.models.fusion_classifier import WeightedLogitAverage
from mmzoo.testing import TestCase
from mmzoo.testing import rewrite_archive
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


VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]"] + [f"w{i}" for i in range(16)]
VOCABULARY_ASSET = "assets/preprocessor/tokenizer/vocabulary.txt"


def classifier_preprocessor(**kwargs):
    kwargs = {"image_converter": (16, 16), "class_names": ["a", "b", "c"], **kwargs}
    return FusionClassifierPreprocessor(TextTokenizer(VOCABULARY), **kwargs)


class FusionClassifierRawInputTest(TestCase):
    """`predict_probabilities` / `predict_classes` on what a user holds."""

    def setUp(self):
        super().setUp()
        self.model = build_fusion_classifier(
            encoders(), fusion="attention", preprocessor=classifier_preprocessor(), **INIT_KWARGS
        )
        rng = np.random.RandomState(0)
        self.images = rng.randint(0, 256, (3, 16, 16, 3)).astype("uint8")
        self.texts = ["w1 w2", "w3", "w4 w5 w6"]

    def test_preprocessor_is_attached(self):
        self.assertEqual(self.model.preprocessor.sequence_length, 6)  # the text encoder's
        with self.assertRaisesRegex(ValueError, "the tokenizer has 12 tokens, the model "
                                    "vocabulary_size=20"):
            build_fusion_classifier(
                encoders(), preprocessor=FusionClassifierPreprocessor(
                    TextTokenizer(VOCABULARY[:12]), image_converter=(16, 16)),
                **INIT_KWARGS,
            )
        cases = [
            ({"image_converter": (32, 32)}, r"converter image_shape=\(32, 32, 3\), model "
             r"image_shape=\(16, 16, 3\)"),
            ({"sequence_length": 8}, "preprocessor sequence_length=8, model sequence_length=6"),
            ({"class_names": ["a", "b"]}, "2 names, num_classes=3"),
        ]
        for kwargs, message in cases:
            with self.assertRaisesRegex(ValueError, message):
                build_fusion_classifier(
                    encoders(), preprocessor=classifier_preprocessor(**kwargs), **INIT_KWARGS
                )
        with self.assertRaisesRegex(ValueError, "must be a FusionClassifierPreprocessor"):
            build_fusion_classifier(encoders(), preprocessor=TextTokenizer(VOCABULARY),
                                    **INIT_KWARGS)

    def test_probabilities_and_classes(self):
        token_ids, padding_mask = self.model.preprocessor.tokenize_strings(self.texts)
        logits = np.asarray(self.model({
            "images": self.images.astype("float32") / 255.0,
            "token_ids": token_ids, "padding_mask": padding_mask,
        }))
        expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        probabilities = self.model.predict_probabilities(images=self.images, texts=self.texts)
        self.assertEqual(probabilities.dtype, np.float32)
        self.assertAllClose(probabilities, expected, atol=1e-6)
        self.assertAllClose(
            self.model.predict_probabilities(self.images, self.texts, batch_size=2),
            expected, atol=1e-6,
        )
        names = self.model.predict_classes(images=self.images, texts=self.texts)
        self.assertEqual(names, [["a", "b", "c"][i] for i in expected.argmax(-1)])
        # Token dicts are taken as they are.
        self.assertAllClose(
            self.model.predict_probabilities(
                self.images, {"token_ids": token_ids, "padding_mask": padding_mask}),
            expected, atol=1e-6,
        )
        empty = self.model.predict_probabilities(images=[], texts=[])
        self.assertEqual(empty.shape, (0, 3))
        self.assertEqual(self.model.predict_classes(images=[], texts=[]), [])

    def test_images_of_another_size_paths_and_bytes(self):
        model = self.model
        expected = model.predict_probabilities(self.images, self.texts)
        # Other sizes and channel counts are converted, as the loaders do.
        gray = np.random.randint(0, 256, (20, 24, 1)).astype("uint8")
        rgba = np.random.rand(40, 40, 4).astype("float32")
        mixed = model.predict_probabilities([gray, rgba, self.images[2]], self.texts)
        self.assertEqual(mixed.shape, (3, 3))
        self.assertAllClose(
            mixed[:2],
            model.predict_probabilities(
                [np.repeat(gray, 3, axis=-1), rgba[..., :3]], self.texts[:2]),
            atol=1e-6,
        )
        # A PNG file and PNG bytes are the pixels they hold.
        png = tf.io.encode_png(self.images[0]).numpy()
        path = os.path.join(self.get_temp_dir(), "image.png")
        with open(path, "wb") as f:
            f.write(png)
        from_files = model.predict_probabilities([path, png, self.images[2]], self.texts[:1] * 3)
        again = model.predict_probabilities(self.images[[0, 0, 2]], self.texts[:1] * 3)
        self.assertAllClose(from_files, again, atol=1e-6)
        self.assertAllClose(from_files[2:], expected[2:], atol=0.2)  # only the text differs

    def test_empty_long_and_non_utf8_texts(self):
        model = self.model
        images = self.images[[0, 0, 0]]
        probabilities = model.predict_probabilities(
            images, ["", "w1 w2 w3 w4 w5 w6 w7 w8", b"w1 \xff"]
        )
        # Cut to the text encoder's 6 tokens: start, 4 words, end.
        self.assertAllClose(
            probabilities[1], model.predict_probabilities(images[:1], ["w1 w2 w3 w4"])[0],
            atol=1e-6,
        )
        # Invalid UTF-8 is replaced (an unknown word), not an error.
        self.assertAllClose(
            probabilities[2], model.predict_probabilities(images[:1], ["w1 \ufffd"])[0],
            atol=1e-6,
        )
        self.assertTrue(np.all(np.isfinite(probabilities)))

    def test_bad_raw_inputs(self):
        model = self.model
        cases = [
            ({"images": self.images, "texts": self.texts[:2]}, "3 images and 2 texts"),
            ({"texts": self.texts}, "pass `images=`. Received: images=None"),
            ({"images": self.images}, "pass `texts=`. Received: texts=None"),
            ({"images": self.images, "texts": "w1"}, "Received: texts='w1'"),
            ({"images": self.images, "texts": [1, 2, 3]}, "Received: texts of type list"),
            ({"images": ["nowhere.png"], "texts": ["w1"]}, r"Received: images\[0\]='nowhere.png'"),
            ({"images": [b"not an image"], "texts": ["w1"]}, r"`images\[0\]` is not a decodable"),
            ({"images": self.images.astype("float32"), "texts": self.texts},
             "divide uint8 pixels by 255"),
            ({"images": self.images, "texts": self.texts, "batch_size": 0},
             "Received: batch_size=0"),
        ]
        for kwargs, message in cases:
            with self.assertRaisesRegex(ValueError, message):
                model.predict_probabilities(**kwargs)
        images_only = build_fusion_classifier({"image": image_encoder()}, **INIT_KWARGS)
        with self.assertRaisesRegex(ValueError, "takes no texts"):
            images_only.predict_classes(images=self.images, texts=self.texts)
        audio_in = keras.Input((10, 4), name="audio")
        audio = keras.Model(audio_in, keras.layers.Dense(8)(audio_in), name="audio_encoder")
        with self.assertRaisesRegex(ValueError, r"also takes \['audio'\]"):
            build_fusion_classifier({"audio": audio, "image": image_encoder()},
                                    **INIT_KWARGS).predict_classes(images=self.images)

    def test_without_preprocessor(self):
        model = build_fusion_classifier(encoders(), **INIT_KWARGS)
        token_ids, padding_mask = self.model.preprocessor.tokenize_strings(self.texts)
        texts = {"token_ids": token_ids, "padding_mask": padding_mask}
        self.assertAllEqual(model.predict_classes(self.images, texts).shape, (3,))  # class ids
        with self.assertRaisesRegex(ValueError, "no preprocessor with a tokenizer"):
            model.predict_classes(self.images, self.texts)
        with self.assertRaisesRegex(ValueError, r"Received: images with shape \(3, 8, 8, 3\)"):
            model.predict_classes(self.images[:, :8, :8], texts)
        with self.assertRaisesRegex(
            ValueError, r"Received: texts\['token_ids'\] with values in \[20, 30\]"
        ):
            model.predict_classes(self.images, {**texts, "token_ids": token_ids + 20})

    def test_saved_file_carries_the_preprocessor(self):
        expected = self.model.predict_probabilities(self.images, self.texts)
        restored = self.run_model_saving_test(self.model, {
            "images": self.images.astype("float32") / 255.0,
            **dict(zip(("token_ids", "padding_mask"),
                       self.model.preprocessor.tokenize_strings(self.texts))),
        })
        self.assertEqual(restored.preprocessor.class_names, ["a", "b", "c"])
        self.assertEqual(restored.preprocessor.tokenizer.get_vocabulary(), VOCABULARY)
        self.assertAllClose(restored.predict_probabilities(self.images, self.texts), expected,
                            atol=1e-6)

    def test_missing_or_mismatched_vocabulary_asset(self):
        path = os.path.join(self.get_temp_dir(), "model.keras")
        self.model.save(path)
        with zipfile.ZipFile(path) as archive:
            self.assertIn(VOCABULARY_ASSET, archive.namelist())
        missing = rewrite_archive(
            path, path + ".missing.keras", lambda n, d: None if n == VOCABULARY_ASSET else d
        )
        with self.assertRaisesRegex(ValueError, "no vocabulary asset.*vocabulary_size=20"):
            keras.saving.load_model(missing, safe_mode=True)
        shorter = rewrite_archive(
            path, path + ".shorter.keras",
            lambda n, d: "".join(t + "\n" for t in VOCABULARY[:15]).encode()
            if n == VOCABULARY_ASSET else d,
        )
        with self.assertRaisesRegex(ValueError, "holds 15 tokens but the model was saved "
                                    "with vocabulary_size=20"):
            keras.saving.load_model(shorter, safe_mode=True)

        # A config edited to agree with a longer asset still disagrees with
        # the text encoder's embedding.
        def longer(name, data):
            if name == VOCABULARY_ASSET:
                return "".join(t + "\n" for t in VOCABULARY + ["w16", "w17"]).encode()
            if name == "config.json":
                config = json.loads(data)
                preprocessor = config["config"]["preprocessor"]["config"]
                preprocessor["tokenizer"]["config"]["vocabulary_size"] = 22
                preprocessor["vocabulary_size"] = 22
                return json.dumps(config).encode()
            return data

        with self.assertRaisesRegex(
            Exception, "the tokenizer has 22 tokens, the model vocabulary_size=20"
        ):
            keras.saving.load_model(
                rewrite_archive(path, path + ".longer.keras", longer), safe_mode=True
            )


# Run in a fresh process: only `mmzoo` (for its registered classes) and the
# `.keras` file. argv: model path, inputs directory, output file.
FRESH_PROCESS_SCRIPT = r"""
import json, os, sys
import numpy as np
import keras
import mmzoo  # registers mmzoo's Keras classes

model = keras.saving.load_model(sys.argv[1], safe_mode=True)
inputs = sys.argv[2]
arrays = np.load(os.path.join(inputs, "arrays.npz"))
with open(os.path.join(inputs, "texts.json")) as f:
    texts = [bytes.fromhex(t) if kind == "bytes" else t for kind, t in json.load(f)]
with open(os.path.join(inputs, "image.jpg"), "rb") as f:
    jpeg = f.read()
mixed = [arrays["gray"], arrays["rgba"], os.path.join(inputs, "image.png"), jpeg]
np.savez(sys.argv[3],
         batch=model.predict_probabilities(images=arrays["batch"], texts=texts),
         mixed=model.predict_probabilities(images=mixed, texts=texts, batch_size=3))
with open(sys.argv[3] + ".json", "w") as f:
    json.dump(model.predict_classes(images=mixed, texts=texts), f)
"""


class FusionClassifierFreshProcessTest(TestCase):
    def test_trained_tiny_preset_reloads_in_a_fresh_process(self):
        from mmzoo import data

        examples = data.load_synthetic("shapes_classification", num_examples=16, image_size=64)
        vocabulary = data.train_word_piece_vocabulary(
            examples.map(lambda x: x["texts"]), vocabulary_size=64
        )
        preprocessor = FusionClassifierPreprocessor(
            TextTokenizer(vocabulary), image_converter=(64, 64),
            class_names=list(data.CLASSIFICATION_CLASS_NAMES),
        )
        text = {"preset": "text_encoder_tiny", "vocabulary_size": len(vocabulary)}
        model = presets.build_from_preset(
            "fusion_classifier_tiny", encoders={"image": "conv_image_encoder_tiny", "text": text},
            preprocessor=preprocessor,
        )
        model.compile(
            optimizer=keras.optimizers.Adam(3e-4),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            run_eagerly=True,  # tracing the train step costs more than 2 eager steps
        )
        # The pipeline takes the model: its preprocessor packs the texts.
        train = data.fusion_pipeline(examples, model, batch_size=8, seed=0, shuffle_buffer=16)
        model.fit(train.map(classification_split), steps_per_epoch=2, epochs=1, verbose=0)
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)

        # Raw inputs: arrays of another size, gray, RGBA, a PNG file, JPEG
        # bytes; empty, over-long and non-UTF-8 texts.
        inputs = self.get_temp_dir()
        rng = np.random.RandomState(0)
        arrays = {
            "batch": rng.randint(0, 256, (4, 80, 80, 3)).astype("uint8"),
            "gray": rng.randint(0, 256, (50, 50, 1)).astype("uint8"),
            "rgba": rng.rand(64, 64, 4).astype("float32"),
        }
        np.savez(os.path.join(inputs, "arrays.npz"), **arrays)
        pixels = rng.randint(0, 256, (48, 48, 3)).astype("uint8")
        with open(os.path.join(inputs, "image.png"), "wb") as f:
            f.write(tf.io.encode_png(pixels).numpy())
        jpeg = tf.io.encode_jpeg(pixels).numpy()
        with open(os.path.join(inputs, "image.jpg"), "wb") as f:
            f.write(jpeg)
        texts = ["is there a red shape?", "", "is there a circle " * 20, b"is there a \xff circle?"]
        with open(os.path.join(inputs, "texts.json"), "w") as f:
            json.dump([["bytes", t.hex()] if isinstance(t, bytes) else ["str", t]
                       for t in texts], f)
        mixed = [arrays["gray"], arrays["rgba"], os.path.join(inputs, "image.png"), jpeg]
        expected = {
            "batch": model.predict_probabilities(images=arrays["batch"], texts=texts),
            "mixed": model.predict_probabilities(images=mixed, texts=texts, batch_size=3),
        }
        expected_classes = model.predict_classes(images=mixed, texts=texts)
        self.assertTrue(set(expected_classes) <= {"no", "yes"})

        output = os.path.join(self.get_temp_dir(), "outputs.npz")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        proc = subprocess.run(
            [sys.executable, "-c", FRESH_PROCESS_SCRIPT, path, inputs, output],
            env=env, capture_output=True, text=True, timeout=600,
        )
        self.assertEqual(proc.returncode, 0, msg=proc.stderr[-4000:])
        actual = np.load(output)
        for key, value in expected.items():
            self.assertAllClose(actual[key], value, atol=1e-6, rtol=0, msg=key)
        with open(output + ".json") as f:
            self.assertEqual(json.load(f), expected_classes)
