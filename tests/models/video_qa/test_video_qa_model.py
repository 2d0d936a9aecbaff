import keras
import numpy as np
import pytest
import tensorflow as tf

from mmzoo import presets
from mmzoo.data import VIDEO_QA_ANSWERS
from mmzoo.data import TextTokenizer
from mmzoo.encoders import build_frame_video_encoder
from mmzoo.encoders import build_text_encoder
from mmzoo.encoders import build_video_encoder
from mmzoo.encoders import build_vit_image_encoder
from mmzoo.losses import MaskedSequenceCrossEntropy
from mmzoo.losses import SoftTargetCrossEntropy
from mmzoo.models import VideoQAClassifier
from mmzoo.models import VideoQAGenerator
from mmzoo.models import VideoQAModel
from mmzoo.models import build_video_qa_model
from mmzoo.models import VideoQAPreprocessor
from mmzoo.models import video_qa_training_split
from mmzoo.testing import TestCase
from mmzoo.training import Trainer
from mmzoo.training import get_strategy

ANSWERS = ["red", "blue", "left", "right", "two"]
ANSWER_TOKENS = ["[PAD]", "[UNK]", "[START]", "[END]", "red", "blue", "left", "right", "##ish"]
QUESTION_VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]"] + [f"w{i}" for i in range(16)]


def tiny_towers(num_frames=4, dtype=None):
    video = build_video_encoder(
        num_frames=num_frames, image_shape=(16, 16, 3), tubelet_size=(2, 8, 8),
        num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32, dtype=dtype,
    )
    question = build_text_encoder(
        vocabulary_size=20, sequence_length=6, num_layers=1, num_heads=2,
        hidden_dim=16, intermediate_dim=32, dtype=dtype,
    )
    return video, question


def reference_greedy(model, inputs, max_length):
    """Reruns the whole model on the growing answer for every new token."""
    batch = len(inputs["videos"])
    length = model.answer_sequence_length
    tokens = np.full((batch, length), model.pad_token_id, "int32")
    tokens[:, 0] = model.start_token_id
    done = np.zeros(batch, bool)
    for t in range(1, max_length + 1):
        logits = model(
            {**inputs, "answer_token_ids": tokens, "answer_padding_mask": np.ones_like(tokens, bool)}
        )
        step_logits = np.asarray(logits)[:, t - 1].copy()
        step_logits[:, [model.pad_token_id, model.start_token_id]] = -np.inf
        next_token = np.where(done, model.pad_token_id, np.argmax(step_logits, axis=-1))
        if t < length:
            tokens[:, t] = next_token
        else:
            tokens = np.concatenate([tokens, next_token[:, None]], axis=1)
        done |= next_token == model.end_token_id
    return tokens[:, 1 : max_length + 1]


class VideoQAModelTest(TestCase):
    def setUp(self):
        super().setUp()
        self.init_kwargs = {
            "answer_vocabulary": ANSWERS,
            "num_fusion_layers": 1,
            "num_heads": 2,
            "hidden_dim": 8,
            "intermediate_dim": 16,
            "dropout_rate": 0.0,
        }
        rng = np.random.RandomState(0)
        self.videos = rng.rand(3, 4, 16, 16, 3).astype("float32")
        self.questions = {
            "question_token_ids": np.array(
                [[2, 5, 6, 7, 8, 3], [2, 9, 10, 3, 0, 0], [2, 11, 3, 0, 0, 0]], "int32"
            ),
            "question_padding_mask": np.array(
                [[1] * 6, [1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]], bool
            ),
        }
        self.input_data = {"videos": self.videos, **self.questions}

    def builder(self, dtype=None, num_frames=4, **kwargs):
        return build_video_qa_model(*tiny_towers(num_frames, dtype), dtype=dtype, **kwargs)

    def generate_kwargs(self, **kwargs):
        return {
            **self.init_kwargs, "answer_vocabulary": ANSWER_TOKENS, "answer_mode": "generate",
            "answer_sequence_length": 3, **kwargs,
        }

    def generate_inputs(self):
        return {
            **self.input_data,
            "answer_token_ids": np.array([[2, 4, 3], [2, 6, 8], [2, 7, 3]], "int32"),
            "answer_padding_mask": np.ones((3, 3), bool),
        }

    def test_builder_basics_classify(self):
        model = self.run_model_builder_test(
            self.builder, self.init_kwargs, self.input_data, (3, 5),
            run_mixed_precision_check=False,
        )
        self.assertIsInstance(model, VideoQAClassifier)
        self.assertIsInstance(model, VideoQAModel)

    @pytest.mark.slow
    def test_builder_basics_generate_with_concat_fusion(self):
        model = self.run_model_builder_test(
            self.builder, self.generate_kwargs(fusion="concat"), self.generate_inputs(),
            (3, 3, 9), run_mixed_precision_check=False,
        )
        self.assertIsInstance(model, VideoQAGenerator)
        self.assertEqual(model.video_question_fusion.modality_concat.name, "modality_concat")

    def test_other_combinations_run(self):
        out = self.builder(**self.init_kwargs, fusion="concat")(self.input_data)
        self.assertEqual(tuple(out.shape), (3, 5))
        out = self.builder(**self.generate_kwargs())(self.generate_inputs())
        self.assertEqual(tuple(out.shape), (3, 3, 9))

    def test_mixed_precision_logits_stay_float32(self):
        model = self.builder(dtype="mixed_bfloat16", **self.init_kwargs)
        self.assertEqual(model.video_question_fusion.blocks[0].compute_dtype, "bfloat16")
        self.assertEqual(keras.backend.standardize_dtype(model(self.input_data).dtype), "float32")

    def test_question_padding_is_ignored(self):
        for fusion in ("cross_attention", "concat"):
            model = self.builder(**self.init_kwargs, fusion=fusion)
            base = np.asarray(model(self.input_data))
            changed = dict(self.input_data)
            ids = changed["question_token_ids"].copy()
            ids[~changed["question_padding_mask"]] = 17
            changed["question_token_ids"] = ids
            self.assertAllClose(model(changed), base, atol=1e-5, msg=fusion)
            # ...while a real token changes the answer scores.
            ids = ids.copy()
            ids[:, 1] = 19
            changed["question_token_ids"] = ids
            self.assertGreater(np.abs(np.asarray(model(changed)) - base).max(), 1e-4, msg=fusion)

    def test_answers_depend_on_the_video(self):
        model = self.builder(**self.init_kwargs)
        base = np.asarray(model(self.input_data))
        # The same questions about other clips get other answer scores.
        shifted = dict(self.input_data, videos=self.videos[[1, 2, 0]])
        difference = np.abs(np.asarray(model(shifted)) - base).max(axis=-1)
        self.assertTrue(np.all(difference > 1e-5), msg=str(difference))

    def test_fit_classify_then_save(self):
        model = self.builder(**self.init_kwargs)
        # XLA is off in the fit tests: compiling costs more than 40 tiny steps.
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SoftTargetCrossEntropy())
        self.assertAllEqual(model.answers_to_ids(["blue", "left", "two"]), [1, 2, 4])
        # Several reference answers: example 0's "red" (3 annotators) beats
        # "blue" (1); padding is -1.
        references = model.answers_to_ids([["red", "red", "blue", "red"], ["left"], ["two", "two"]])
        self.assertAllEqual(references, [[0, 0, 1, 0], [2, -1, -1, -1], [4, 4, -1, -1]])
        ds = tf.data.Dataset.from_tensor_slices({**self.input_data, "answer_ids": references})
        ds = ds.batch(3).map(video_qa_training_split)
        x, y = next(iter(ds))
        self.assertEqual(x["question_padding_mask"].dtype, tf.int32)
        self.assertAllEqual(y, references)
        model.fit(ds.repeat(), steps_per_epoch=40, epochs=1, verbose=0)
        self.assertEqual(model.answer(self.videos, self.questions), ["red", "left", "two"])
        # The answer vocabulary travels with the .keras file.
        restored = self.run_model_saving_test(model, self.input_data)
        self.assertEqual(restored.answer_vocabulary, ANSWERS)
        self.assertEqual(restored.answer(self.videos, self.questions), ["red", "left", "two"])

    def test_fit_generate_mode_and_cached_decoding(self):
        model = self.builder(**self.generate_kwargs())
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=MaskedSequenceCrossEntropy())
        answers = np.array([[2, 4, 3, 0], [2, 6, 8, 3], [2, 7, 3, 0]], "int32")
        data = {**self.input_data, "answer_token_ids": answers, "answer_padding_mask": answers > 0}
        ds = tf.data.Dataset.from_tensor_slices(data).batch(3).map(video_qa_training_split)
        x, y = next(iter(ds))
        self.assertEqual(tuple(x["answer_token_ids"].shape), (3, 3))
        self.assertAllEqual(y[1], [6, 8, 3])
        model.fit(ds.repeat(), steps_per_epoch=40, epochs=1, verbose=0)
        self.assertEqual(model.answer(self.videos, self.questions), ["red", "leftish", "right"])
        # The cached XLA loop decodes exactly as rerunning the whole model does.
        self.assertAllEqual(
            model.generate(self.videos, self.questions), reference_greedy(model, self.input_data, 3)
        )
        traces = model.generate_trace_count
        model.answer(self.videos, self.questions)
        self.assertEqual(model.generate_trace_count, traces)
        restored = self.run_model_saving_test(model, self.generate_inputs())
        self.assertEqual(restored.answer(self.videos, self.questions), ["red", "leftish", "right"])

    def test_cached_greedy_equals_full_rerun_with_concat_fusion(self):
        # (Cross-attention fusion: in the generate-mode fit test.)
        model = self.builder(**self.generate_kwargs(fusion="concat"))
        self.assertAllEqual(
            model.generate(self.videos, self.questions, max_length=2),
            reference_greedy(model, self.input_data, 2),
        )

    def test_beam_search_runs_with_the_memory_mask(self):
        model = self.builder(**self.generate_kwargs())
        tokens = model.generate(self.videos, self.questions, method="beam", num_beams=2)
        self.assertEqual(tokens.shape, (3, 3))
        self.assertFalse(np.isin(tokens[:, 0], [0, 2]).any())  # never pad or start first
        ended = np.cumsum(tokens == 3, axis=1) - (tokens == 3) > 0
        self.assertTrue(np.all(tokens[ended] == 0))  # padding after the end token

    def test_question_strings_and_truncation(self):
        preprocessor = VideoQAPreprocessor(TextTokenizer(QUESTION_VOCABULARY))
        model = self.builder(**self.init_kwargs, preprocessor=preprocessor)
        self.assertEqual(preprocessor.question_length, 6)  # the question encoder's
        questions = ["w1 w2", "w3 w4 w5 w6", "w7 w8 w9 w10 w11 w12 w13"]
        answers = model.answer(self.videos, questions)
        self.assertLen(answers, 3)
        self.assertTrue(set(answers) <= set(ANSWERS))
        # A question longer than question_length is cut (keeping the end
        # token): it answers as its first 4 words do.
        long_logits = model(
            {"videos": self.videos[2:], **_packed(preprocessor, ["w7 w8 w9 w10 w11 w12 w13"])}
        )
        short_logits = model(
            {"videos": self.videos[2:], **_packed(preprocessor, ["w7 w8 w9 w10"])}
        )
        self.assertAllClose(long_logits, short_logits)
        self.assertEqual(model.answer(self.videos[2:], questions[2:]), answers[2:])

    def test_uint8_videos_and_batching(self):
        model = self.builder(**self.init_kwargs)
        pixels = (self.videos * 255).round().astype("uint8")
        expected = model.answer(pixels.astype("float32") / 255.0, self.questions)
        self.assertEqual(model.answer(pixels, self.questions, batch_size=2), expected)

    def test_image_vqa_is_a_one_frame_video(self):
        image_encoder = build_vit_image_encoder(
            image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2,
            hidden_dim=16, intermediate_dim=32,
        )
        question_encoder = tiny_towers()[1]
        model = build_video_qa_model(image_encoder, question_encoder, **self.init_kwargs)
        self.assertEqual(model.num_frames, 1)
        images = self.videos[:, 0]
        logits = model({"videos": images[:, None], **self.questions})
        self.assertEqual(tuple(logits.shape), (3, 5))
        self.assertEqual(
            model.answer(images, self.questions), model.answer(images[:, None], self.questions)
        )
        self.run_model_saving_test(model, {"videos": images[:, None], **self.questions})

    def test_frame_video_encoder(self):
        frames = build_vit_image_encoder(
            image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2,
            hidden_dim=16, intermediate_dim=32,
        )
        video = build_frame_video_encoder(
            frames, num_frames=4, num_layers=1, num_heads=2, intermediate_dim=32
        )
        model = build_video_qa_model(video, tiny_towers()[1], **self.init_kwargs)
        self.assertEqual(tuple(model(self.input_data).shape), (3, 5))

    @pytest.mark.slow
    def test_trainer_under_mirrored_strategy_with_xla(self):
        data = {k: np.concatenate([v, v[:1]]) for k, v in self.input_data.items()}
        data["answer_ids"] = np.array([1, 2, 4, 1], "int32")
        ds = tf.data.Dataset.from_tensor_slices(data).batch(4, drop_remainder=True)
        ds = ds.map(video_qa_training_split).repeat()
        trainer = Trainer(
            model_fn=lambda: self.builder(**self.init_kwargs),
            loss=SoftTargetCrossEntropy(),
            optimizer=keras.optimizers.Adam(1e-2),
            strategy=get_strategy("mirrored"),
        )
        rows = trainer.fit(ds, steps=20, log_every=10, verbose=0)
        self.assertLess(rows[-1]["loss"], rows[0]["loss"])

    def test_bad_inputs(self):
        model = self.builder(**self.init_kwargs)
        with self.assertRaisesRegex(ValueError, r"num_frames=4 frames.*Received: videos with shape \(3, 6, 16, 16, 3\)"):
            model.answer(np.zeros((3, 6, 16, 16, 3)), self.questions)
        with self.assertRaisesRegex(ValueError, r"resize them first. Received: videos with shape \(3, 4, 8, 8, 3\)"):
            model.answer(np.zeros((3, 4, 8, 8, 3)), self.questions)
        with self.assertRaisesRegex(ValueError, r"Received: videos with shape \(3, 16, 16, 3\)"):
            model.answer(self.videos[:, 0], self.questions)
        with self.assertRaisesRegex(ValueError, "need the model's preprocessor.*Received: preprocessor=None"):
            model.answer(self.videos, ["w1", "w2", "w3"])
        with self.assertRaisesRegex(ValueError, "Received: 3 clips and 2 questions"):
            model.answer(self.videos, {k: v[:2] for k, v in self.questions.items()})
        with self.assertRaisesRegex(ValueError, r"Received: shape \(3, 5\)"):
            model.answer(self.videos, {k: v[:, :5] for k, v in self.questions.items()})
        with self.assertRaisesRegex(ValueError, "Unknown answer 'purple'.*Received: answer='purple'"):
            model.answers_to_ids(["red", "purple"])
        # A classifier has no decoder: no `generate`, no decoding settings.
        self.assertFalse(hasattr(model, "generate"))
        with self.assertRaisesRegex(TypeError, "method"):
            model.answer(self.videos, self.questions, method="beam")
        generator = self.builder(**self.generate_kwargs())
        # No preprocessor: token ids, an empty array for no clips.
        empty = generator.generate(
            np.zeros((0, 4, 16, 16, 3)), {k: v[:0] for k, v in self.questions.items()},
            max_length=2,
        )
        self.assertEqual((empty.shape, empty.dtype), ((0, 2), np.int32))
        with self.assertRaisesRegex(ValueError, "Received: max_length=4"):
            generator.generate(self.videos, self.questions, max_length=4)
        self.assertFalse(hasattr(generator, "answers_to_ids"))

    def test_one_class_per_answer_mode(self):
        classifier = self.builder(**self.init_kwargs)
        generator = self.builder(**self.generate_kwargs())
        self.assertEqual(
            (type(classifier), classifier.answer_mode, type(generator), generator.answer_mode),
            (VideoQAClassifier, "classify", VideoQAGenerator, "generate"),
        )
        # Both share the fusion layer's class and weights layout; only the
        # generator has a text decoder.
        self.assertEqual(
            [w.path for w in classifier.video_question_fusion.weights],
            [w.path for w in generator.video_question_fusion.weights],
        )
        self.assertFalse(hasattr(classifier, "text_decoder"))
        self.assertEqual(generator.text_decoder.sequence_length, 3)
        self.assertNotIn("answer_sequence_length", classifier.get_config())
        # A config naming the base class and its answer_mode gives the subclass.
        for model in (classifier, generator):
            config = keras.saving.serialize_keras_object(model)
            config["class_name"] = "VideoQAModel"
            restored = keras.saving.deserialize_keras_object(config)
            self.assertIs(type(restored), type(model))
            self.assertEqual(restored.get_config(), model.get_config())
        config = classifier.get_config()
        config["answer_mode"] = "generate"
        with self.assertRaisesRegex(ValueError, "A VideoQAClassifier has answer_mode='classify'"):
            VideoQAClassifier.from_config(config)
        with self.assertRaisesRegex(TypeError, "build a `VideoQAClassifier` or a `VideoQAGenerator`"):
            VideoQAModel(*tiny_towers(4, None), ANSWERS)
        with self.assertRaisesRegex(
            ValueError, r"Received: answer_mode='classify' with \{'answer_sequence_length': 3\}"
        ):
            self.builder(**self.init_kwargs, answer_sequence_length=3)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "Received: hidden_dim=8"):
            self.builder(**{**self.init_kwargs, "num_heads": 3})
        with self.assertRaisesRegex(ValueError, "answer_mode.*Received: answer_mode='span'"):
            self.builder(**self.init_kwargs, answer_mode="span")
        with self.assertRaisesRegex(ValueError, "fusion.*Received: fusion='sum'"):
            self.builder(**{**self.init_kwargs, "fusion": "sum"})
        with self.assertRaisesRegex(ValueError, r"\['\[UNK\]', '\[START\]', '\[END\]'\] missing"):
            self.builder(**self.generate_kwargs(answer_vocabulary=["[PAD]", "a", "b"]))
        with self.assertRaisesRegex(ValueError, "none repeated"):
            self.builder(**{**self.init_kwargs, "answer_vocabulary": ["a", "a"]})
        video, _ = tiny_towers()
        with self.assertRaisesRegex(ValueError, "`question_encoder` must take"):
            build_video_qa_model(video, video, **self.init_kwargs)
        inputs = keras.Input((4, 16, 16, 3))
        pooled_only = keras.Model(inputs, keras.layers.Flatten()(inputs))
        with self.assertRaisesRegex(ValueError, "`sequence_output`.*Received: outputs KerasTensor"):
            build_video_qa_model(pooled_only, tiny_towers()[1], **self.init_kwargs)


def _packed(preprocessor, questions):
    packed = preprocessor.preprocess_texts(questions)
    return {
        "question_token_ids": packed["token_ids"].numpy(),
        "question_padding_mask": packed["padding_mask"].numpy(),
    }


class VideoQAPresetsTest(TestCase):
    def test_tiny_preset(self):
        self.assertIn("video_qa_tiny", presets.list_presets(family="video_qa"))
        config = presets.get_preset_config("video_qa_tiny")
        # The presets' answers are those of the built-in dataset.
        self.assertEqual(config["answer_vocabulary"], list(VIDEO_QA_ANSWERS))
        model = presets.build_from_preset("video_qa_tiny")
        self.assertLess(model.count_params(), 500_000)
        self.assertEqual(model.video_shape, (8, 32, 32, 3))
        # Each frame reaches the per-frame conv net with its frame difference.
        self.assertIsNotNone(model.video_encoder.get_layer("frame_differences"))
        self.assertEqual(model.video_encoder.get_layer("fold_frames").output.shape[1:], (32, 32, 6))
        logits = model(
            {
                "videos": np.zeros((2, 8, 32, 32, 3), "float32"),
                "question_token_ids": np.ones((2, 16), "int32"),
                "question_padding_mask": np.ones((2, 16), bool),
            }
        )
        self.assertEqual(tuple(logits.shape), (2, len(VIDEO_QA_ANSWERS)))

    def test_vivit_tiny_preset(self):
        model = presets.build_from_preset("video_qa_vivit_tiny")
        self.assertEqual(model.video_shape, (8, 32, 32, 3))
        # Motion reaches every tubelet as frame differences; 4x4-pixel patches.
        self.assertIsNotNone(model.video_encoder.get_layer("frame_differences"))
        self.assertEqual(model.video_encoder.get_layer("tubelet_embedding").tubelet_size, (2, 4, 4))
