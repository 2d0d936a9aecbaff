"""Bad input to the model families' user-facing methods gets a clear answer.

One tiny model per family is built once per class (`setUpClass`); each test
checks one case: the message of the `ValueError`, or the type and shape of
the empty result. Only a few tests run a model (greedy decoding of 2 items).
"""

import json

import keras
import numpy as np

from mmzoo import presets
from mmzoo.data import TextTokenizer
from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.validation import check_rate
from mmzoo.models import ImageCaptioningPreprocessor
from mmzoo.models import build_fusion_classifier
from mmzoo.models import build_image_captioning_model
from mmzoo.testing import TestCase

CAPTION_VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]"] + [f"w{i}" for i in range(8)]
QUESTION_VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]"] + [f"w{i}" for i in range(16)]
ANSWER_TOKENS = ["[PAD]", "[UNK]", "[START]", "[END]", "red", "blue", "left"]


class ValidationTest(TestCase):
    def test_check_positive_int_accepts_numpy_ints_as_python_ints(self):
        value = check_positive_int("num_heads", np.int64(4))
        self.assertIs(type(value), int)
        self.assertEqual(value, 4)
        for bad in (True, np.bool_(True), 2.0, 0, np.int32(-1), "4"):
            with self.assertRaisesRegex(ValueError, "`num_heads` must be a positive integer"):
                check_positive_int("num_heads", bad)

    def test_check_rate_returns_a_python_float(self):
        self.assertIs(type(check_rate("dropout_rate", np.float32(0.5))), float)
        with self.assertRaisesRegex(ValueError, "Received: dropout_rate=True"):
            check_rate("dropout_rate", True)


class ImageCaptioningBadInputTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.model = presets.build_from_preset(
            "image_captioning_tiny", vocabulary_size=len(CAPTION_VOCABULARY)
        )
        cls.images = np.random.RandomState(0).rand(2, 32, 32, 3).astype("float32")

    def setUp(self):
        super().setUp()
        self.model.preprocessor = None  # arrays in, token ids out

    def test_temperature_must_be_positive(self):
        for bad, shown in ((0, "0"), (-1, "-1"), (float("nan"), "nan"), ("1.0", "'1.0'")):
            with self.assertRaisesRegex(
                ValueError, rf"`temperature` must be a positive number. Received: temperature={shown}$"
            ):
                self.model.generate(self.images, temperature=bad)

    def test_sampler_arguments(self):
        cases = [
            ({"method": "top_k", "k": 0}, "Received: k=0"),
            ({"method": "top_k", "k": 13}, r"at most the vocabulary size \(12\). Received: k=13"),
            ({"method": "top_p", "p": 0.0}, r"`p` must be in \(0, 1\]. Received: p=0.0"),
            ({"method": "top_p", "p": "0.5"}, "Received: p='0.5'"),
            ({"method": "beam", "num_beams": 0}, "Received: num_beams=0"),
            ({"method": "top_k", "seed": 1.5}, "`seed` must be an int or None. Received: seed=1.5"),
            ({"method": "nucleus"}, "Received: method='nucleus'"),
            ({"max_length": 0}, r"int in \[1, 24\].*Received: max_length=0"),
            ({"max_length": 25}, "Received: max_length=25"),
            ({"max_length": 2.0}, "Received: max_length=2.0"),
            ({"max_length": True}, "Received: max_length=True"),
        ]
        for kwargs, pattern in cases:
            with self.subTest(**{k: repr(v) for k, v in kwargs.items()}):
                with self.assertRaisesRegex(ValueError, pattern):
                    self.model.generate(self.images, **kwargs)

    def test_batch_size_must_be_positive(self):
        for bad in (0, -1, 1.5, True):
            with self.assertRaisesRegex(
                ValueError,
                rf"`batch_size` must be a positive int, or None.*Received: batch_size={bad!r}",
            ):
                self.model.generate(self.images, batch_size=bad)
        with self.assertRaisesRegex(ValueError, "Received: batch_size=0"):
            self.model.generate(np.zeros((0, 32, 32, 3)), batch_size=0)

    def test_no_images_give_an_empty_result(self):
        traces = self.model.generate_trace_count
        tokens = self.model.generate(np.zeros((0, 32, 32, 3), "float32"))
        self.assertEqual(tokens.dtype, np.int32)
        self.assertEqual(tokens.shape, (0, 24))
        self.assertEqual(self.model.generate([], max_length=np.int64(5)).shape, (0, 5))
        self.model.preprocessor = ImageCaptioningPreprocessor(
            TextTokenizer(CAPTION_VOCABULARY), image_converter=(32, 32)
        )
        self.assertEqual(self.model.generate(np.zeros((0, 32, 32, 3), "uint8")), [])
        self.assertEqual(self.model.generate([]), [])
        self.assertEqual(self.model.generate_trace_count, traces)  # nothing ran

    def test_nan_images(self):
        images = self.images.copy()
        images[1, 3, 4] = np.nan
        with self.assertRaisesRegex(
            ValueError, r"`images` must hold finite values.*3 non-finite values, in batch rows \[1\]"
        ):
            self.model.generate(images)

    def test_images_in_0_255(self):
        with self.assertRaisesRegex(
            ValueError,
            r"`images` must be floats in \[0, 1\].*found values in \[0, 255\]: divide uint8 "
            r"pixels by 255.*Received: images with values in \[0, 255\]",
        ):
            self.model.generate(np.round(self.images * 255) * 0 + [0.0, 255.0, 7.0])
        with self.assertRaisesRegex(ValueError, r"\(x \+ 1\) / 2"):
            self.model.generate(self.images * 2 - 1)

    def test_non_numeric_images(self):
        with self.assertRaisesRegex(ValueError, "uint8 or floats.*Received: images with dtype <U1"):
            self.model.generate(np.full((2, 32, 32, 3), "a"))

    def test_wrong_shape_keeps_its_message(self):
        with self.assertRaisesRegex(
            ValueError, r"shape \(batch, 32, 32, 3\). Received: images with shape \(2, 16, 16, 3\)"
        ):
            self.model.generate(np.zeros((2, 16, 16, 3)))

    def test_uint8_images_are_scaled(self):
        pixels = np.round(self.images * 255).astype("uint8")
        expected = self.model.generate(pixels.astype("float32") / 255.0, max_length=2)
        tokens = self.model.generate(pixels, max_length=2, batch_size=np.int64(2))
        self.assertAllEqual(tokens, expected)

    def test_cross_attention_scores_arguments(self):
        token_ids = np.full((2, 4), 4, "int32")
        with self.assertRaisesRegex(ValueError, r"\[-2, 2\).*Received: block_index=2"):
            self.model.cross_attention_scores(self.images, token_ids, block_index=2)
        with self.assertRaisesRegex(ValueError, r"Received: token_ids with shape \(2, 30\)"):
            self.model.cross_attention_scores(self.images, np.full((2, 30), 4))
        with self.assertRaisesRegex(ValueError, r"ids in \[0, 12\).*values in \[4, 99\]"):
            self.model.cross_attention_scores(self.images, [[4, 99], [4, 4]])
        with self.assertRaisesRegex(ValueError, "Received: 2 images and 1 captions"):
            self.model.cross_attention_scores(self.images, token_ids[:1])

    def test_numpy_int_sizes_give_a_json_clean_config(self):
        model = build_image_captioning_model(
            presets.build_from_preset("vit_image_encoder_tiny"),
            vocabulary_size=np.int64(12), sequence_length=np.int64(8),
            num_layers=np.int64(1), num_heads=2, hidden_dim=16, intermediate_dim=32,
            end_token_id=np.int64(3),
        )
        config = model.get_config()
        for key in ("vocabulary_size", "sequence_length", "num_layers", "end_token_id"):
            self.assertIs(type(config[key]), int, msg=key)
        text = json.dumps(config)
        restored = model.__class__.from_config(json.loads(text))
        self.assertEqual(json.dumps(restored.get_config()), text)


class VideoQABadInputTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from mmzoo.models import VideoQAPreprocessor

        # The preset's 512-token question vocabulary.
        vocabulary = QUESTION_VOCABULARY + [f"x{i}" for i in range(512 - len(QUESTION_VOCABULARY))]
        cls.tokenizer = TextTokenizer(vocabulary, sequence_length=16)
        cls.classifier = presets.build_from_preset(
            "video_qa_tiny", preprocessor=VideoQAPreprocessor(cls.tokenizer)
        )
        cls.generator = presets.build_from_preset(
            "video_qa_tiny", answer_mode="generate", answer_vocabulary=ANSWER_TOKENS,
            answer_sequence_length=3, preprocessor=VideoQAPreprocessor(cls.tokenizer),
        )
        cls.videos = np.random.RandomState(0).rand(2, 8, 32, 32, 3).astype("float32")
        cls.questions = ["w1 w2", "w3"]

    def test_batch_size_must_be_positive(self):
        for bad in (-1, 0, 2.0):
            with self.assertRaisesRegex(ValueError, rf"Received: batch_size={bad!r}"):
                self.classifier.answer(self.videos, self.questions, batch_size=bad)
            with self.assertRaisesRegex(ValueError, rf"Received: batch_size={bad!r}"):
                self.generator.generate(self.videos, self.questions, batch_size=bad)
        with self.assertRaisesRegex(ValueError, "Received: batch_size=-1"):
            self.classifier.answer([], [], batch_size=-1)

    def test_no_clips_give_an_empty_result(self):
        traces = self.generator.generate_trace_count
        self.assertEqual(self.classifier.answer([], []), [])
        self.assertEqual(self.classifier.answer(np.zeros((0, 8, 32, 32, 3), "uint8"), []), [])
        self.assertEqual(self.generator.answer([], [], batch_size=None), [])
        self.assertEqual(self.generator.generate(np.zeros((0, 8, 32, 32, 3)), [], max_length=2), [])
        self.assertEqual(self.generator.generate_trace_count, traces)  # nothing ran

    def test_token_ids_instead_of_strings(self):
        token_ids = np.ones((2, 16), "int32")
        with self.assertRaisesRegex(
            ValueError,
            r"`questions` must be a list of strings, one per clip, or a dict with "
            r"`question_token_ids`.*Received: questions of ndarray of dtype int32 and shape \(2, 16\)",
        ):
            self.classifier.answer(self.videos, token_ids)
        with self.assertRaisesRegex(ValueError, "Received: questions of list of 2 items of type int"):
            self.classifier.answer(self.videos, [4, 5])
        with self.assertRaisesRegex(ValueError, "Received: questions='w1 w2'"):
            self.classifier.answer(self.videos, "w1 w2")

    def test_tokenizer_output_needs_the_question_prefix(self):
        with self.assertRaisesRegex(
            ValueError,
            r"`question_` prefix\). Received: questions with keys \['padding_mask', 'token_ids'\]",
        ):
            self.classifier.answer(self.videos, self.tokenizer(self.questions))

    def test_bad_token_ids(self):
        questions = {
            "question_token_ids": np.full((2, 16), 600),
            "question_padding_mask": np.ones((2, 16), bool),
        }
        with self.assertRaisesRegex(ValueError, r"ids in \[0, 512\).*values in \[600, 600\]"):
            self.classifier.answer(self.videos, questions)
        questions["question_token_ids"] = np.ones((2, 16), "float32")
        with self.assertRaisesRegex(ValueError, "integer token ids.*dtype float32"):
            self.classifier.answer(self.videos, questions)
        questions["question_token_ids"] = np.ones((2, 16), "int32")
        questions["question_padding_mask"] = np.ones((2, 15), bool)
        with self.assertRaisesRegex(ValueError, r"question_padding_mask with shape \(2, 15\)"):
            self.classifier.answer(self.videos, questions)

    def test_as_many_questions_as_clips(self):
        with self.assertRaisesRegex(ValueError, "Received: 2 clips and 3 questions"):
            self.classifier.answer(self.videos, self.questions + ["w4"])

    def test_nan_and_0_255_videos(self):
        videos = self.videos.copy()
        videos[0, 2] = np.inf
        with self.assertRaisesRegex(ValueError, r"`videos` must hold finite.*in batch rows \[0\]"):
            self.classifier.answer(videos, self.questions)
        with self.assertRaisesRegex(ValueError, "found values in .*divide uint8 pixels by 255"):
            self.generator.generate(self.videos * 255, self.questions)
        with self.assertRaisesRegex(ValueError, "divide uint8 pixels by 255"):
            self.classifier.prepare_videos(self.videos * 255)

    def test_wrong_frame_count_keeps_its_message(self):
        with self.assertRaisesRegex(ValueError, r"num_frames=8 frames.*shape \(2, 4, 32, 32, 3\)"):
            self.classifier.answer(self.videos[:, :4], self.questions)

    def test_generate_temperature(self):
        with self.assertRaisesRegex(ValueError, "Received: temperature=0$"):
            self.generator.generate(self.videos, self.questions, temperature=0)
        with self.assertRaisesRegex(ValueError, "Received: temperature=-1$"):
            self.generator.answer(self.videos, self.questions, temperature=-1)

    def test_uint8_videos_are_scaled(self):
        pixels = np.round(self.videos * 255).astype("uint8")
        expected = self.classifier.answer(pixels.astype("float32") / 255.0, self.questions)
        self.assertEqual(self.classifier.answer(pixels, self.questions, batch_size=None), expected)


class DualEncoderBadInputTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.model = presets.build_from_preset("dual_encoder_tiny")
        cls.images = np.random.RandomState(0).rand(2, 32, 32, 3).astype("float32")

    def traces(self):
        return sum(f.experimental_get_tracing_count() for f in self.model._encode_functions.values())

    def test_no_inputs_give_empty_embeddings(self):
        traces = self.traces()
        for result in (
            self.model.encode_images(np.zeros((0, 32, 32, 3), "uint8")),
            self.model.encode_images([]),
            self.model.encode_text([]),
            self.model.encode_text(
                {"token_ids": np.zeros((0, 32), "int32"), "padding_mask": np.zeros((0, 32), bool)}
            ),
        ):
            self.assertEqual(result.dtype, np.float32)
            self.assertEqual(result.shape, (0, 32))
        self.assertEqual(self.traces(), traces)  # nothing ran

    def test_batch_size_must_be_positive(self):
        for bad in (0, -1, 2.5):
            with self.assertRaisesRegex(ValueError, rf"Received: batch_size={bad!r}"):
                self.model.encode_images(self.images, batch_size=bad)
            with self.assertRaisesRegex(ValueError, rf"Received: batch_size={bad!r}"):
                self.model.encode_text([], batch_size=bad)

    def test_nan_and_0_255_images(self):
        images = self.images.copy()
        images[0, 0, 0, 0] = np.nan
        with self.assertRaisesRegex(ValueError, r"1 non-finite values, in batch rows \[0\] \(of 2\)"):
            self.model.encode_images(images)
        with self.assertRaisesRegex(ValueError, "divide uint8 pixels by 255"):
            self.model.encode_images(self.images * 255)

    def test_wrong_shape_keeps_its_message(self):
        with self.assertRaisesRegex(ValueError, r"Received: images with shape \(2, 8, 8, 3\)"):
            self.model.encode_images(np.zeros((2, 8, 8, 3)))

    def test_encode_text_needs_strings_or_the_token_dict(self):
        with self.assertRaisesRegex(
            ValueError,
            r"takes strings .* or a dict with \['padding_mask', 'token_ids'\].*Received: inputs "
            r"of ndarray of dtype int64 and shape \(2, 32\)",
        ):
            self.model.encode_text(np.ones((2, 32), "int64"))
        with self.assertRaisesRegex(ValueError, r"Received: inputs with keys \['ids'\]"):
            self.model.encode_text({"ids": np.ones((2, 32), "int32")})
        with self.assertRaisesRegex(ValueError, "no tokenizer.*Received: 1 strings"):
            self.model.encode_text("a red circle")

    def test_bad_token_ids(self):
        mask = np.ones((2, 32), bool)
        short = {"token_ids": np.ones((2, 16), "int32"), "padding_mask": mask[:, :16]}
        with self.assertRaisesRegex(
            ValueError, r"sequence_length; use a tokenizer.*Received: token_ids with shape \(2, 16\)"
        ):
            self.model.encode_text(short)
        negative = {"token_ids": -np.ones((2, 32), "int32"), "padding_mask": mask}
        with self.assertRaisesRegex(
            ValueError, r"ids in \[0, 512\).*Received: token_ids with values in \[-1, -1\]"
        ):
            self.model.encode_text(negative)

    def test_pair_logits_needs_embeddings(self):
        with self.assertRaisesRegex(
            ValueError, r"\(n, 32\).*Received: text_embeddings with dtype float64 and shape \(3, 8\)"
        ):
            self.model.pair_logits(np.zeros((2, 32)), np.zeros((3, 8)))

    def test_uint8_images_and_numpy_batch_size(self):
        pixels = np.round(self.images * 255).astype("uint8")
        expected = self.model.encode_images(pixels.astype("float32") / 255.0)
        self.assertAllClose(
            self.model.encode_images(pixels, batch_size=np.int64(2)), expected, atol=1e-6
        )


class FusionClassifierConfigTest(TestCase):
    def test_numpy_int_sizes_give_a_json_clean_config(self):
        inputs = keras.Input((4,), name="features")
        encoder = keras.Model(inputs, keras.layers.Dense(8)(inputs), name="features_encoder")
        model = build_fusion_classifier(
            {"features": encoder}, num_classes=np.int64(3), fusion="early",
            hidden_dim=np.int64(8), dropout_rate=np.float32(0.0),
        )
        config = model.get_config()
        self.assertIs(type(config["num_classes"]), int)
        self.assertIs(type(config["hidden_dim"]), int)
        self.assertIs(type(config["dropout_rate"]), float)
        json.dumps(config)
