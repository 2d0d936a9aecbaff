import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import keras
import numpy as np
from PIL import Image

import mmzoo
from mmzoo.data import TextTokenizer
from mmzoo.models import ImageCaptioningPreprocessor
from mmzoo.testing import TestCase

VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]", "a", "red", "blue", "circle", "square"]


def encode(array, fmt="PNG"):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def run_python(code, tmp):
    """Runs `code` in a fresh interpreter; returns the JSON it prints last."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
        cwd=tmp, env=env, timeout=600,
    )
    if result.returncode != 0:
        raise AssertionError(f"subprocess failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


class ImageCaptioningPreprocessorTest(TestCase):
    def setUp(self):
        super().setUp()
        self.preprocessor = ImageCaptioningPreprocessor(
            TextTokenizer(VOCABULARY), image_converter=(16, 16), sequence_length=5
        )

    def test_call_packs_to_the_model_length_plus_one(self):
        images = np.random.RandomState(0).randint(0, 256, (2, 20, 24, 3)).astype("uint8")
        outputs = self.preprocessor({"images": images, "captions": ["a red circle", ""]})
        self.assertEqual(tuple(outputs["images"].shape), (2, 16, 16, 3))
        self.assertAllEqual(outputs["token_ids"], [[2, 4, 5, 7, 3, 0], [2, 3, 0, 0, 0, 0]])
        self.assertAllEqual(outputs["padding_mask"][1], [1, 1, 0, 0, 0, 0])

    def test_over_long_and_non_utf8_captions(self):
        token_ids, _ = self.preprocessor.tokenize_strings(
            ["a red circle blue square a red", b"red \xff circle"]
        )
        self.assertAllEqual(token_ids[0], [2, 4, 5, 7, 6, 3])  # cut, the end token kept
        self.assertAllEqual(token_ids[1], [2, 5, 1, 7, 3, 0])  # the bad byte is [UNK]

    def test_images_of_any_size_and_channel_count(self):
        rng = np.random.RandomState(1)
        rgb = rng.randint(0, 256, (16, 16, 3), dtype=np.uint8)
        gray = rgb[..., :1]
        rgba = np.concatenate([rgb, np.full((16, 16, 1), 255, np.uint8)], axis=-1)
        large = rng.randint(0, 256, (40, 30, 3), dtype=np.uint8)
        converted = self.preprocessor.preprocess_images([rgb, gray, rgba, large])
        self.assertEqual(converted.shape, (4, 16, 16, 3))
        self.assertAllClose(converted[0], rgb / 255.0)
        self.assertAllClose(converted[1], np.repeat(gray, 3, axis=-1) / 255.0)
        self.assertAllClose(converted[2], rgb / 255.0)
        # Encoded bytes and the array they hold give the same pixels.
        self.assertAllClose(self.preprocessor.preprocess_images([encode(large)])[0], converted[3])

    def test_bad_images_are_refused_naming_the_item(self):
        with self.assertRaisesRegex(ValueError, r"images\[1\]` is not a decodable"):
            self.preprocessor.preprocess_images([encode(np.zeros((4, 4, 3), np.uint8)), b"nope"])
        with self.assertRaisesRegex(ValueError, r"images\[0\]` names an image file that cannot"):
            self.preprocessor.preprocess_images(["/no/such/file.png"])
        with self.assertRaisesRegex(ValueError, "finite"):
            self.preprocessor.preprocess_images(np.full((1, 16, 16, 3), np.nan, "float32"))
        with self.assertRaisesRegex(ValueError, "divide uint8 pixels by 255"):
            self.preprocessor.preprocess_images(np.full((1, 16, 16, 3), 200.0, "float32"))

    def test_model_checks_its_preprocessor(self):
        with self.assertRaisesRegex(ValueError, "tokenizer has 9 tokens, the model vocabulary_size=12"):
            mmzoo.presets.build_from_preset(
                "image_captioning_tiny", vocabulary_size=12, preprocessor=self.preprocessor
            )
        with self.assertRaisesRegex(ValueError, "preprocessor sequence_length=5"):
            mmzoo.presets.build_from_preset(
                "image_captioning_tiny", vocabulary_size=9, preprocessor=self.preprocessor
            )

    def test_vocabulary_asset_missing_or_mismatched_fails_at_load(self):
        preprocessor = ImageCaptioningPreprocessor(TextTokenizer(VOCABULARY), (32, 32))
        model = mmzoo.presets.build_from_preset(
            "image_captioning_tiny", vocabulary_size=len(VOCABULARY), preprocessor=preprocessor
        )
        tmp = self.get_temp_dir()
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        asset = "assets/preprocessor/tokenizer/vocabulary.txt"

        def rewrite(name, content):
            out = os.path.join(tmp, name)
            with zipfile.ZipFile(path) as source, zipfile.ZipFile(out, "w") as target:
                for item in source.infolist():
                    if item.filename != asset:
                        target.writestr(item, source.read(item.filename))
                    elif content is not None:
                        target.writestr(item, content)
            return out

        missing = rewrite("missing.keras", None)
        with self.assertRaisesRegex(ValueError, "no vocabulary asset.*vocabulary_size=9"):
            keras.saving.load_model(missing, safe_mode=True)
        short = rewrite("short.keras", "\n".join(VOCABULARY[:-2]) + "\n")
        with self.assertRaisesRegex(ValueError, "holds 7 tokens but the model was saved with vocabulary_size=9"):
            keras.saving.load_model(short, safe_mode=True)


class ImageCaptioningCarriesItsPreprocessingTest(TestCase):
    def test_trained_saved_loaded_and_served_alike(self):
        # Train the tiny preset a few steps with the preprocessor in the pipeline.
        keras.utils.set_random_seed(0)
        examples = mmzoo.data.load_synthetic(
            "shapes_captions", split="train", num_examples=32, image_size=32
        )
        vocabulary = mmzoo.data.train_word_piece_vocabulary(
            examples.map(lambda x: x["captions"]), vocabulary_size=64
        )
        preprocessor = ImageCaptioningPreprocessor(TextTokenizer(vocabulary), (32, 32))
        model = mmzoo.presets.build_from_preset(
            "image_captioning_tiny", vocabulary_size=len(vocabulary), preprocessor=preprocessor
        )
        train = mmzoo.data.captioning_pipeline(examples, model, batch_size=8, seed=0)
        model.compile(optimizer="adam", loss=mmzoo.losses.MaskedSequenceCrossEntropy())
        model.fit(train.map(mmzoo.models.teacher_forcing_split), steps_per_epoch=3, verbose=0)

        tmp = self.get_temp_dir()
        rng = np.random.RandomState(0)
        images = [rng.randint(0, 256, (48, 40, 3), dtype=np.uint8) for _ in range(3)]
        paths = []
        for i, image in enumerate(images):
            paths.append(os.path.join(tmp, f"{i}.png"))
            with open(paths[-1], "wb") as f:
                f.write(encode(image))
        expected = model.generate(np.stack(images))
        self.assertEqual(model.generate(paths), expected)
        model.save(os.path.join(tmp, "model.keras"))
        mmzoo.export.export_image_captioning_model(model, os.path.join(tmp, "served"))

        loaded = run_python(
            """
            import json, numpy as np, keras, mmzoo
            from PIL import Image
            model = keras.saving.load_model("model.keras", safe_mode=True)
            paths = [f"{i}.png" for i in range(3)]
            arrays = np.stack([np.asarray(Image.open(p)) for p in paths])
            data = [open(p, "rb").read() for p in paths]
            print(json.dumps([model.generate(arrays), model.generate(paths), model.generate(data)]))
            """,
            tmp,
        )
        self.assertEqual(loaded, [expected] * 3)
        served = run_python(
            """
            import json, sys, tensorflow as tf, tensorflow_text  # noqa: F401
            serving = tf.saved_model.load("served")
            data = [open(f"{i}.png", "rb").read() for i in range(3)]
            out = serving.signatures["caption"](images=tf.constant(data))
            assert not any(m.startswith("mmzoo") for m in sys.modules), "mmzoo was imported"
            print(json.dumps([c.decode() for c in out["captions"].numpy()]))
            """,
            tmp,
        )
        self.assertEqual(served, expected)
