import io
import json
import os

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from mmzoo.data import TextTokenizer
from mmzoo.data import VideoConverter
from mmzoo.data import video_qa_pipeline
from mmzoo.encoders import build_text_encoder
from mmzoo.encoders import build_video_encoder
from mmzoo.encoders import build_vit_image_encoder
from mmzoo.models import VideoQAPreprocessor
from mmzoo.models import build_video_qa_model
from mmzoo.testing import TestCase

QUESTION_VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]"] + [f"w{i}" for i in range(16)]
ANSWERS = ["red", "blue", "left", "right", "two"]
ANSWER_TOKENS = ["[PAD]", "[UNK]", "[START]", "[END]", "red", "blue", "left", "right", "##ish"]


def png(frame):
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def build(preprocessor=None, video_encoder=None, **kwargs):
    video_encoder = video_encoder or build_video_encoder(
        num_frames=4, image_shape=(16, 16, 3), tubelet_size=(2, 8, 8), num_layers=1,
        num_heads=2, hidden_dim=16, intermediate_dim=32,
    )
    question_encoder = build_text_encoder(
        vocabulary_size=20, sequence_length=6, num_layers=1, num_heads=2, hidden_dim=16,
        intermediate_dim=32,
    )
    kwargs = {"answer_vocabulary": ANSWERS, **kwargs}
    return build_video_qa_model(
        video_encoder, question_encoder, num_fusion_layers=1, num_heads=2, hidden_dim=8,
        intermediate_dim=16, dropout_rate=0.0, preprocessor=preprocessor, **kwargs,
    )


class VideoQAPreprocessorTest(TestCase):
    def setUp(self):
        super().setUp()
        self.tokenizer = TextTokenizer(QUESTION_VOCABULARY)
        self.init_kwargs = {
            "tokenizer": self.tokenizer,
            "video_converter": (4, (16, 16)),
            "question_length": 6,
            "answer_mode": "classify",
            "answer_vocabulary": ANSWERS,
        }
        rng = np.random.RandomState(0)
        self.frames = rng.randint(0, 256, (3, 4, 16, 16, 3), dtype=np.uint8)
        self.questions = ["w1 w2", "w3", "w4 w5 w6 w7 w8 w9 w10"]

    def test_the_model_sets_its_lengths_and_converter(self):
        preprocessor = VideoQAPreprocessor(self.tokenizer)
        model = build(preprocessor, answer_vocabulary=ANSWER_TOKENS, answer_mode="generate",
                      answer_sequence_length=3)
        self.assertIs(model.preprocessor, preprocessor)
        self.assertEqual(preprocessor.question_length, 6)
        self.assertEqual(preprocessor.answer_mode, "generate")
        self.assertEqual(list(preprocessor.answer_vocabulary), ANSWER_TOKENS)
        self.assertEqual(preprocessor.answer_sequence_length, 3)
        self.assertEqual(preprocessor.video_converter.num_frames, 4)
        self.assertEqual(preprocessor.video_converter.image_shape, (16, 16, 3))

    def test_call_gives_the_training_features(self):
        preprocessor = VideoQAPreprocessor(**self.init_kwargs)
        out = preprocessor(
            {
                "videos": tf.constant(self.frames),  # uint8 is scaled, as the loaders do
                "questions": tf.constant(self.questions),
                "answers": tf.constant(["blue", "maybe", "two"]),
            }
        )
        self.assertEqual(tuple(out["videos"].shape), (3, 4, 16, 16, 3))
        self.assertAllClose(out["videos"], self.frames / 255.0)
        self.assertAllEqual(out["question_token_ids"][0], [2, 5, 6, 3, 0, 0])
        self.assertAllEqual(out["question_token_ids"][2], [2, 8, 9, 10, 11, 3])  # truncated
        self.assertAllEqual(out["answer_ids"], [1, -1, 4])
        # Generate mode: answers packed to answer_sequence_length + 1 tokens.
        generator = VideoQAPreprocessor(
            **{**self.init_kwargs, "answer_mode": "generate", "answer_vocabulary": ANSWER_TOKENS},
            answer_sequence_length=3,
        )
        out = generator.preprocess_answers(tf.constant(["red", "leftish", "right left red"]))
        self.assertAllEqual(out["answer_token_ids"], [[2, 4, 3, 0], [2, 6, 8, 3], [2, 7, 6, 3]])
        self.assertAllEqual(generator.detokenize_answers(out["answer_token_ids"]),
                            [b"red", b"leftish", b"right left"])

    def test_pipelines_take_the_model(self):
        model = build(VideoQAPreprocessor(self.tokenizer))
        examples = tf.data.Dataset.from_tensor_slices({
            "videos": self.frames.astype("float32") / 255.0,
            "questions": self.questions,
            "answers": ["red", "two", "blue"],
        })
        (batch,) = video_qa_pipeline(
            examples, model, batch_size=3, answer_vocabulary=ANSWERS, shuffle_buffer=None,
            repeat=False, deterministic=True,
        ).as_numpy_iterator()
        token_ids, _ = model.preprocessor.tokenize_strings(self.questions)
        self.assertAllEqual(batch["question_token_ids"], token_ids)
        self.assertAllEqual(batch["answer_ids"], [0, 4, 1])

    def test_config_round_trip(self):
        preprocessor = VideoQAPreprocessor(**self.init_kwargs)
        config = json.loads(json.dumps(keras.saving.serialize_keras_object(preprocessor)))
        restored = keras.saving.deserialize_keras_object(config)
        self.assertEqual(restored.get_config(), preprocessor.get_config())
        self.assertEqual(restored.video_converter.num_frames, 4)

    def test_saved_model_keeps_its_preprocessor(self):
        model = build(VideoQAPreprocessor(self.tokenizer), answer_vocabulary=ANSWER_TOKENS,
                      answer_mode="generate", answer_sequence_length=3)
        answers = model.answer(self.frames, self.questions)
        self.assertEqual(model.generate(self.frames, self.questions), answers)  # strings
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
        self.assertIsInstance(restored.preprocessor, VideoQAPreprocessor)
        self.assertEqual(restored.preprocessor.tokenizer.get_vocabulary(), QUESTION_VOCABULARY)
        self.assertEqual(restored.answer(self.frames, self.questions), answers)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "Received: answer_mode='span'"):
            VideoQAPreprocessor(self.tokenizer, answer_mode="span")
        with self.assertRaisesRegex(ValueError, "Received: question_length=0"):
            VideoQAPreprocessor(self.tokenizer, question_length=0)
        with self.assertRaisesRegex(ValueError, "Received: video_converter=42"):
            VideoQAPreprocessor(self.tokenizer, video_converter=42)
        with self.assertRaisesRegex(ValueError, "Received: question_length=None"):
            VideoQAPreprocessor(self.tokenizer).preprocess_texts(["w1"])

    def test_a_preprocessor_that_disagrees_with_the_model(self):
        small = TextTokenizer(QUESTION_VOCABULARY[:12])
        with self.assertRaisesRegex(
            ValueError, "the tokenizer has 12 tokens, the model vocabulary_size=20"
        ):
            build(VideoQAPreprocessor(small))
        with self.assertRaisesRegex(ValueError, "preprocessor question_length=8, model question_length=6"):
            build(VideoQAPreprocessor(self.tokenizer, question_length=8))
        with self.assertRaisesRegex(ValueError, "converter num_frames=8, model num_frames=4"):
            build(VideoQAPreprocessor(self.tokenizer, video_converter=(8, (16, 16))))
        with self.assertRaisesRegex(ValueError, "preprocessor answer_mode=generate, model answer_mode=classify"):
            build(VideoQAPreprocessor(self.tokenizer, answer_mode="generate"))


class VideoQARawInputTest(TestCase):
    """What `answer` takes with a preprocessor: one test per kind of input."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.model = build(VideoQAPreprocessor(TextTokenizer(QUESTION_VOCABULARY)))
        rng = np.random.RandomState(0)
        cls.frames = rng.randint(0, 256, (2, 4, 16, 16, 3), dtype=np.uint8)
        cls.questions = ["w1 w2", "w3 w4"]
        cls.expected = cls.model.answer(cls.frames, cls.questions)

    def test_frame_files_and_bytes(self):
        directory = self.get_temp_dir()
        clips = []
        for c, clip in enumerate(self.frames):
            paths = []
            for i, frame in enumerate(clip):
                paths.append(os.path.join(directory, f"{c}_{i}.png"))
                with open(paths[-1], "wb") as f:
                    f.write(png(frame))
            clips.append(paths)
        self.assertEqual(self.model.answer(clips, self.questions), self.expected)
        encoded = [[png(frame) for frame in clip] for clip in self.frames]
        self.assertEqual(self.model.answer(encoded, self.questions), self.expected)

    def test_other_frame_sizes_and_channels_are_converted(self):
        big = np.repeat(np.repeat(self.frames, 2, axis=2), 2, axis=3)  # 32x32, 2x2 blocks
        # Area averaging of 2x2 blocks gives the 16x16 frames back.
        self.assertEqual(self.model.answer(big, self.questions), self.expected)
        gray = self.frames[..., :1]
        rgba = np.concatenate([self.frames, np.full_like(self.frames[..., :1], 255)], -1)
        self.assertEqual(
            self.model.answer(gray, self.questions),
            self.model.answer(np.repeat(gray, 3, axis=-1), self.questions),
        )
        self.assertEqual(self.model.answer(rgba, self.questions), self.expected)
        # Clips of different sizes in one batch.
        self.assertEqual(self.model.answer([big[0], self.frames[1]], self.questions), self.expected)

    def test_wrong_frame_count_is_refused(self):
        with self.assertRaisesRegex(
            ValueError, r"num_frames=4 frames.*Received: videos with shape \(2, 6, 16, 16, 3\)"
        ):
            self.model.answer(np.zeros((2, 6, 16, 16, 3), np.uint8), self.questions)
        with self.assertRaisesRegex(ValueError, r"`videos\[1\]` must hold num_frames=4 frames. Received: 3 frames"):
            self.model.answer([list(self.frames[0]), list(self.frames[1, :3])], self.questions)
        with self.assertRaisesRegex(ValueError, r"`videos\[0\]\[2\]` is not a decodable"):
            self.model.answer([[png(f) for f in self.frames[0][:2]] + [b"x", b"y"]], ["w1"])

    def test_non_utf8_question_bytes(self):
        # Invalid UTF-8 is replaced (U+FFFD, then [UNK]), never an error.
        answers = self.model.answer(self.frames, [b"w1 \xff\xfe", "w3 w4"])
        self.assertEqual(answers[1], self.expected[1])
        token_ids, _ = self.model.preprocessor.tokenize_strings([b"w1 \xff\xfe"])
        self.assertAllEqual(token_ids[0], [2, 5, 1, 3, 0, 0])

    def test_over_long_questions_are_truncated(self):
        long = "w1 w2 " + " ".join(["w9"] * 50)
        self.assertEqual(
            self.model.answer(self.frames[:1], [long]),
            self.model.answer(self.frames[:1], ["w1 w2 w9 w9"]),
        )

    def test_image_qa_takes_images_and_image_files(self):
        image_encoder = build_vit_image_encoder(
            image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2,
            hidden_dim=16, intermediate_dim=32,
        )
        model = build(VideoQAPreprocessor(TextTokenizer(QUESTION_VOCABULARY)),
                      video_encoder=image_encoder)
        images = self.frames[:, 0]
        expected = model.answer(images[:, None], self.questions)
        self.assertEqual(model.answer(images, self.questions), expected)
        self.assertEqual(model.answer([png(i) for i in images], self.questions), expected)
        self.assertEqual(
            model.answer(VideoConverter(1, (16, 16)).convert(images[:, None]), self.questions),
            expected,
        )
