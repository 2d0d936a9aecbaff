"""A trained video QA model is the whole model: its `.keras` file and its
SavedModel answer raw clips and question strings with nothing else to load."""

import io
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
from PIL import Image

from mmzoo import presets
from mmzoo.data import TextTokenizer
from mmzoo.data import load_synthetic
from mmzoo.data import train_word_piece_vocabulary
from mmzoo.data import video_qa_pipeline
from mmzoo.export import export_video_qa_model
from mmzoo.losses import SoftTargetCrossEntropy
from mmzoo.models import VideoQAPreprocessor
from mmzoo.models import video_qa_training_split
from mmzoo.testing import TestCase

# One fresh process for both checks: first the SavedModel with only
# `tensorflow` and `tensorflow_text` imported, then the `.keras` file with
# mmzoo (which a `.keras` file of mmzoo classes needs to be read).
CHILD_SCRIPT = """
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tf-text ops

inputs = np.load("inputs.npz", allow_pickle=True)
with open("inputs.json") as f:
    raw = json.load(f)
questions = tf.constant(raw["questions"])
answer = tf.saved_model.load(raw["saved_model"]).signatures
served = {
    "arrays": answer["answer"](frames=tf.constant(inputs["clips"]), questions=questions),
    "big_arrays": answer["answer"](frames=tf.constant(inputs["big"]), questions=questions),
    "bytes": answer["answer_encoded"](frames=tf.constant(inputs["encoded"]), questions=questions),
}
results = {f"served_{k}": [a.decode() for a in v["answers"].numpy()] for k, v in served.items()}
results["statuses"] = sorted({s.decode() for v in served.values() for s in v["status"].numpy()})
results["imported"] = [m for m in ("mmzoo", "keras_hub") if m in sys.modules]

import keras
import mmzoo  # noqa: F401  registers the mmzoo classes

model = keras.saving.load_model(raw["keras_file"], safe_mode=True)
results["loaded_arrays"] = model.answer(inputs["clips"], raw["questions"])
results["loaded_big_arrays"] = model.answer(inputs["big"], raw["questions"])
# Files and bytes for two clips only: each frame is decoded by its own call.
results["loaded_paths"] = model.answer(raw["paths"], raw["questions"][:2])
results["loaded_bytes"] = model.answer([list(clip) for clip in inputs["encoded"][:2]],
                                       raw["questions"][:2])
ids, mask = model.preprocessor.tokenize_strings(raw["questions"])
logits = model({"videos": model.prepare_videos(inputs["clips"]), "question_token_ids": ids,
                "question_padding_mask": mask})
np.save("logits.npy", keras.ops.convert_to_numpy(logits))
with open("outputs.json", "w") as f:
    json.dump(results, f)
"""


def png(frame):
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


class VideoQAAcceptanceTest(TestCase):
    def test_reloaded_and_served_answers_equal_the_trained_model_s(self):
        keras.utils.set_random_seed(0)
        examples = load_synthetic("shapes_video_qa", "train", num_examples=48)
        vocabulary = train_word_piece_vocabulary(
            examples.map(lambda x: x["questions"]), vocabulary_size=64
        )
        model = presets.build_from_preset(
            "video_qa_tiny", question_encoder={"vocabulary_size": len(vocabulary)},
            preprocessor=VideoQAPreprocessor(TextTokenizer(vocabulary)),
        )
        # A few eager steps: tracing the training step (let alone compiling
        # it with XLA) costs more than they do.
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3), loss=SoftTargetCrossEntropy(),
            run_eagerly=True,
        )
        batches = video_qa_pipeline(examples, model, batch_size=8, seed=0)
        model.fit(batches.map(video_qa_training_split), steps_per_epoch=3, epochs=1, verbose=0)

        # Raw inputs: uint8 clips at the model's size and larger, frame
        # files, encoded frames (PNG: lossless, so all give the same pixels).
        (test,) = load_synthetic("shapes_video_qa", "test", num_examples=4).batch(4)
        clips = np.round(test["videos"].numpy() * 255).astype("uint8")  # (4, 8, 32, 32, 3)
        big = np.repeat(np.repeat(clips, 2, axis=2), 3, axis=3)  # 64x96 frames
        questions = [q.decode() for q in test["questions"].numpy()]
        questions[0] += b" \xff".decode("utf-8", "replace") + " and" * 40  # long and odd
        encoded = np.array([[png(frame) for frame in clip] for clip in clips], dtype=object)
        directory = self.get_temp_dir()
        paths = []
        for c, clip in enumerate(encoded[:2]):
            paths.append([os.path.join(directory, f"clip{c}_{i}.png") for i in range(len(clip))])
            for path, data in zip(paths[-1], clip):
                with open(path, "wb") as f:
                    f.write(data)
        expected = model.answer(clips, questions)
        expected_big = model.answer(big, questions)
        ids, mask = model.preprocessor.tokenize_strings(questions)
        logits = model({"videos": model.prepare_videos(clips), "question_token_ids": ids,
                        "question_padding_mask": mask})

        keras_file = os.path.join(directory, "model.keras")
        model.save(keras_file)
        saved_model = os.path.join(directory, "saved_model")
        export_video_qa_model(model, saved_model)
        np.savez(os.path.join(directory, "inputs.npz"), clips=clips, big=big, encoded=encoded)
        with open(os.path.join(directory, "inputs.json"), "w") as f:
            json.dump({"questions": questions, "paths": paths, "keras_file": keras_file,
                       "saved_model": saved_model}, f)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(CHILD_SCRIPT)], cwd=directory, env=env,
            capture_output=True, text=True, timeout=600,
        )
        self.assertEqual(proc.returncode, 0, msg=proc.stderr[-4000:])
        with open(os.path.join(directory, "outputs.json")) as f:
            results = json.load(f)

        self.assertEqual(results.pop("imported"), [])  # the SavedModel needs no mmzoo
        self.assertEqual(results.pop("statuses"), ["ok"])
        for key in ("served_arrays", "served_bytes", "loaded_arrays"):
            self.assertEqual(results[key], expected, msg=key)
        self.assertEqual(results["loaded_paths"], expected[:2])
        self.assertEqual(results["loaded_bytes"], expected[:2])
        self.assertEqual(results["served_big_arrays"], expected_big)
        self.assertEqual(results["loaded_big_arrays"], expected_big)
        self.assertAllClose(np.load(os.path.join(directory, "logits.npy")), logits, atol=1e-5)
