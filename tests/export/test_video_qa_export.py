import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mmzoo.data import TextTokenizer
from mmzoo.data import load_video_qa_files
from mmzoo.encoders import build_text_encoder
from mmzoo.encoders import build_video_encoder
from mmzoo.export import export_video_qa_model
from mmzoo.data.images import scale_uint8_images
from mmzoo.models import VideoQAPreprocessor
from mmzoo.models import build_video_qa_model
from mmzoo.testing import TestCase

QUESTION_VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]"] + [f"w{i}" for i in range(16)]
ANSWERS = ["red", "blue", "left", "right", "two"]
ANSWER_TOKENS = ["[PAD]", "[UNK]", "[START]", "[END]", "red", "blue", "left", "##ish"]
QUESTIONS = ["w1 w2 w3", "w4", "w5 w6 w7 w8 w9 w10 w11 w12 w13"]  # the last one is truncated


def encode_png(frame):
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def build(preprocessor="default", **kwargs):
    video = build_video_encoder(
        num_frames=4, image_shape=(16, 16, 3), tubelet_size=(2, 8, 8), num_layers=1,
        num_heads=2, hidden_dim=16, intermediate_dim=32,
    )
    question = build_text_encoder(
        vocabulary_size=20, sequence_length=6, num_layers=1, num_heads=2, hidden_dim=16,
        intermediate_dim=32,
    )
    if preprocessor == "default":
        preprocessor = VideoQAPreprocessor(TextTokenizer(QUESTION_VOCABULARY))
    return build_video_qa_model(
        video, question, num_fusion_layers=1, num_heads=2, hidden_dim=8,
        intermediate_dim=16, preprocessor=preprocessor, **kwargs,
    )


class VideoQAExportTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.RandomState(0)
        self.frames = rng.randint(0, 256, (3, 4, 16, 16, 3), dtype=np.uint8)

    def export_and_check(self, model, **export_kwargs):
        """The served `answer` signature (in a TF-only process) equals `model.answer`."""
        answers = model.answer(self.frames, QUESTIONS, **export_kwargs)
        paths = []

        def export(path):
            paths.append(path)
            export_video_qa_model(model, path, **export_kwargs)

        served = self.run_export_test(
            input_data={"frames": self.frames, "questions": np.array(QUESTIONS, dtype=object)},
            export_fn=export,
            endpoint="answer",
            expected_output={
                "answers": np.array([a.encode() for a in answers], dtype=object),
                "status": np.array([b"ok"] * 3, dtype=object),
            }
            | self.expected_ids(model, **export_kwargs),
        )
        return paths[0], answers, served

    def expected_ids(self, model, **export_kwargs):
        if model.answer_mode == "classify":
            return {"answer_ids": model.answers_to_ids(model.answer(self.frames, QUESTIONS))}
        preprocessor = model.preprocessor
        ids, mask = preprocessor.tokenize_strings(QUESTIONS)
        questions = {"question_token_ids": ids, "question_padding_mask": mask}
        model.preprocessor = None  # token ids, not strings
        try:
            token_ids = model.generate(self.frames, questions, **export_kwargs)
        finally:
            model.preprocessor = preprocessor
        return {"answer_ids": token_ids}

    def test_classify_answer_signatures(self):
        model = build(answer_vocabulary=ANSWERS)
        path, answers, _ = self.export_and_check(model)
        serving = tf.saved_model.load(path)
        # Encoded frames: PNG is lossless, so the answers are the same; a clip
        # with one undecodable frame gets an empty answer and its status.
        encoded = np.array([[encode_png(f) for f in clip] for clip in self.frames], dtype=object)
        encoded[1, 2] = b"not an image"
        out = serving.signatures["answer_encoded"](
            frames=tf.constant(encoded), questions=tf.constant(QUESTIONS)
        )
        self.assertAllEqual(out["status"], [b"ok", b"undecodable frame", b"ok"])
        self.assertAllEqual(out["answers"], [answers[0].encode(), b"", answers[2].encode()])
        # Larger frames are resampled in the graph as the training pipeline
        # resamples the same clips read from `.npy` files.
        big = np.random.RandomState(1).randint(0, 256, (3, 4, 32, 24, 3), dtype=np.uint8)
        tmp = self.get_temp_dir()
        manifest = os.path.join(tmp, "qa.jsonl")
        with open(manifest, "w") as f:
            for i, (clip, question) in enumerate(zip(big, QUESTIONS)):
                np.save(os.path.join(tmp, f"clip{i}.npy"), clip)
                f.write(json.dumps({"video_path": f"clip{i}.npy", "question": question,
                                    "answer": "red"}) + "\n")
        examples, _ = load_video_qa_files(manifest, num_frames=4, image_shape=(16, 16))
        trained = np.stack([x["videos"] for x in examples.as_numpy_iterator()])
        self.assertAllEqual(scale_uint8_images(big, 16, 16), trained)
        out = serving.signatures["answer"](frames=tf.constant(big), questions=tf.constant(QUESTIONS))
        expected = model.answer(trained, QUESTIONS)
        self.assertAllEqual(out["answers"], [a.encode() for a in expected])
        self.assertAllEqual(out["answer_ids"], model.answers_to_ids(expected))
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, r"num_frames=4 frames.*\[3 3 16 16 3\]"):
            serving.signatures["answer"](
                frames=tf.constant(self.frames[:, :3]), questions=tf.constant(QUESTIONS)
            )

    def test_quantized_classifier_serves_its_own_answers(self):
        model = build(answer_vocabulary=ANSWERS)
        model.quantize("int8")
        self.export_and_check(model)

    @pytest.mark.slow
    def test_generate_answer_signature(self):
        model = build(
            answer_vocabulary=ANSWER_TOKENS, answer_mode="generate", answer_sequence_length=3
        )
        # Untrained, so the answers are arbitrary token strings; served
        # (tf-text detokenization in the graph) and eager ones must agree.
        self.export_and_check(model, method="beam", num_beams=2)

    def test_bad_arguments(self):
        model = build(answer_vocabulary=ANSWERS)
        path = os.path.join(self.get_temp_dir(), "x")
        with self.assertRaisesRegex(ValueError, "Received: method='top_k'"):
            export_video_qa_model(model, path, method="top_k")
        with self.assertRaisesRegex(ValueError, "no preprocessor.*Received: model.preprocessor=None"):
            export_video_qa_model(build(answer_vocabulary=ANSWERS, preprocessor=None), path)
        self.assertFalse(os.path.exists(path))
