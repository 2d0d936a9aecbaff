import keras
import numpy as np
import tensorflow as tf

from mmzoo.data import ImageConverter
from mmzoo.data import TextTokenizer
from mmzoo.models.fusion_classifier import FusionClassifierPreprocessor
from mmzoo.testing import TestCase

VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]"] + [f"w{i}" for i in range(16)]
PAD, UNK, START, END = 0, 1, 2, 3


def preprocessor(**kwargs):
    kwargs = {
        "image_converter": (16, 16), "sequence_length": 6, "class_names": ["a", "b", "c"],
        **kwargs,
    }
    return FusionClassifierPreprocessor(TextTokenizer(VOCABULARY), **kwargs)


class FusionClassifierPreprocessorTest(TestCase):
    def test_call_maps_an_example_dict_to_model_inputs(self):
        layer = preprocessor()
        x = {
            "images": tf.constant(np.random.randint(0, 256, (2, 20, 30, 3)).astype("uint8")),
            "texts": tf.constant(["w1 w2", "w3"]),
            "labels": tf.constant([0, 2]),
        }
        outputs = layer(x)
        self.assertEqual(sorted(outputs), ["images", "labels", "padding_mask", "token_ids"])
        self.assertEqual(tuple(outputs["images"].shape), (2, 16, 16, 3))
        self.assertEqual(outputs["images"].dtype, tf.float32)
        self.assertAllEqual(outputs["token_ids"], [[START, 5, 6, END, PAD, PAD],
                                                   [START, 7, END, PAD, PAD, PAD]])
        self.assertAllEqual(outputs["padding_mask"][1], [1, 1, 1, 0, 0, 0])
        self.assertAllEqual(outputs["labels"], [0, 2])  # passed on unchanged
        # Traceable: the same in tf.data.
        ds = tf.data.Dataset.from_tensor_slices(x).batch(2).map(layer)
        batch = next(iter(ds))
        self.assertAllClose(batch["images"], outputs["images"])
        self.assertAllEqual(batch["token_ids"], outputs["token_ids"])
        # One modality only.
        text_only = layer({"texts": tf.constant(["w1"])})
        self.assertEqual(sorted(text_only), ["padding_mask", "token_ids"])

    def test_images_of_any_size_and_channel_count(self):
        layer = preprocessor()
        gray = np.random.randint(0, 256, (24, 40, 1)).astype("uint8")
        rgba = np.random.rand(8, 8, 4).astype("float32")
        images = layer.preprocess_images([gray, rgba])
        self.assertEqual(images.shape, (2, 16, 16, 3))
        self.assertAllClose(images[0, ..., 0], images[0, ..., 2])  # gray -> equal channels
        # RGBA: the alpha channel is dropped.
        self.assertAllClose(images[1], layer.preprocess_images(rgba[None, ..., :3])[0])
        self.assertEqual(layer.preprocess_images([]).shape, (0, 16, 16, 3))

    def test_empty_long_and_non_utf8_texts(self):
        layer = preprocessor()
        token_ids, padding_mask = layer.tokenize_strings(
            ["", "w1 w2 w3 w4 w5 w6 w7", b"w1 \xff\xfe", np.str_("w2")]
        )
        self.assertAllEqual(token_ids[0], [START, END, PAD, PAD, PAD, PAD])
        self.assertAllEqual(token_ids[1], [START, 5, 6, 7, 8, END])  # cut, end kept
        self.assertAllEqual(token_ids[2], [START, 5, UNK, END, PAD, PAD])  # replaced, not failed
        self.assertAllEqual(padding_mask.sum(-1), [2, 6, 4, 3])
        self.assertEqual(layer.tokenize_strings([])[0].shape, (0, 6))

    def test_class_names(self):
        layer = preprocessor()
        self.assertEqual(layer.class_ids_to_names(np.array([2, 0])), ["c", "a"])
        with self.assertRaisesRegex(ValueError, "Received: class_names=None"):
            preprocessor(class_names=None).class_ids_to_names([0])

    def test_config_round_trip(self):
        layer = preprocessor()
        config = keras.saving.serialize_keras_object(layer)
        restored = keras.saving.deserialize_keras_object(config)
        self.assertIsInstance(restored, FusionClassifierPreprocessor)
        self.assertEqual(restored.class_names, ["a", "b", "c"])
        self.assertEqual(restored.sequence_length, 6)
        self.assertEqual(restored.image_converter.image_shape, (16, 16, 3))
        # The vocabulary is an asset of the `.keras` file, not config.
        self.assertEqual(restored.vocabulary_size, len(VOCABULARY))
        self.assertFalse(restored.tokenizer_ready)

    def test_image_or_text_only(self):
        images_only = FusionClassifierPreprocessor(image_converter=ImageConverter((8, 8)))
        self.assertEqual(images_only.preprocess_images(np.zeros((1, 4, 4, 3), "uint8")).shape,
                         (1, 8, 8, 3))
        with self.assertRaisesRegex(ValueError, "needs a tokenizer"):
            images_only.tokenize_strings(["w1"])
        texts_only = preprocessor(image_converter=None)
        with self.assertRaisesRegex(ValueError, "Received: image_converter=None"):
            texts_only.preprocess_images(np.zeros((1, 4, 4, 3), "uint8"))
        with self.assertRaisesRegex(ValueError, "no image converter"):
            texts_only({"images": np.zeros((1, 4, 4, 3), "uint8")})

    def test_bad_arguments(self):
        for bad in ("ab", ["a"], ["a", "a"], ["a", 2], 3):
            with self.assertRaisesRegex(ValueError, "Received: class_names="):
                preprocessor(class_names=bad)
        for bad in (1, 2.0, True):
            with self.assertRaisesRegex(ValueError, f"Received: sequence_length={bad!r}"):
                preprocessor(sequence_length=bad)
        with self.assertRaisesRegex(ValueError, "Received: image_shape="):
            preprocessor(image_converter=(16,))
        with self.assertRaisesRegex(ValueError, "Received: sequence_length=None"):
            preprocessor(sequence_length=None).tokenize_strings(["w1"])
        with self.assertRaisesRegex(ValueError, "Received: texts='w1'"):
            preprocessor().tokenize_strings("w1")
        with self.assertRaisesRegex(ValueError, "Received: texts of type int"):
            preprocessor().tokenize_strings(3)
