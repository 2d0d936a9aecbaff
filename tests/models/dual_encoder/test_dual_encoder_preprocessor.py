import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from PIL import Image

from mmzoo import data
from mmzoo import presets
from mmzoo.data import ImageConverter
from mmzoo.data import TextTokenizer
from mmzoo.encoders import build_text_encoder
from mmzoo.encoders import build_video_encoder
from mmzoo.encoders import build_vit_image_encoder
from mmzoo.export import export_dual_encoder
from mmzoo.losses import CLIPLoss
from mmzoo.models import build_dual_encoder
from mmzoo.models import build_two_view_encoder
from mmzoo.models.dual_encoder import DualEncoderPreprocessor
from mmzoo.testing import TestCase

VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]", "a", "red", "circle", "blue", "square"]


def image_tower(name="vit_image_encoder"):
    return build_vit_image_encoder(
        image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2,
        hidden_dim=16, intermediate_dim=32, name=name,
    )


def text_tower(vocabulary_size=len(VOCABULARY)):
    return build_text_encoder(
        vocabulary_size=vocabulary_size, sequence_length=6, num_layers=1, num_heads=2,
        hidden_dim=16, intermediate_dim=32,
    )


def encode(array, image_format="PNG"):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format)
    return buffer.getvalue()


class DualEncoderPreprocessorTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.RandomState(0)
        self.pixels = rng.randint(0, 256, (3, 16, 16, 3), dtype=np.uint8)
        self.texts = ["a red circle", "a blue square", ""]

    def clip(self, preprocessor=None):
        return build_dual_encoder(
            image_tower(), text_tower(), projection_dim=8,
            preprocessor=preprocessor or DualEncoderPreprocessor(TextTokenizer(VOCABULARY)),
        )

    def test_the_model_sets_length_and_converter(self):
        model = self.clip()
        preprocessor = model.preprocessor
        self.assertEqual(preprocessor.sequence_length, 6)
        self.assertIsInstance(preprocessor.image_converter, ImageConverter)
        self.assertEqual(preprocessor.image_converter.image_shape, (16, 16, 3))
        packed = preprocessor.preprocess_texts(tf.constant(["a red circle", "blue"]))
        self.assertAllEqual(packed["token_ids"], [[2, 4, 5, 6, 3, 0], [2, 7, 3, 0, 0, 0]])
        self.assertAllEqual(packed["padding_mask"][1], [True] * 3 + [False] * 3)
        self.assertNotIn(preprocessor, model.layers)  # not part of the graph

    def test_call_maps_raw_batches_to_the_model_inputs(self):
        preprocessor = self.clip().preprocessor
        batch = {
            "images": np.zeros((2, 40, 30, 1), "uint8"),  # another size, grayscale
            "captions": np.array(["a red circle", "a blue square"], object),
            "labels": np.array([0, 1]),
        }
        outputs = preprocessor(batch)
        self.assertEqual(sorted(outputs), ["images", "labels", "padding_mask", "token_ids"])
        self.assertShapesEqual(
            {k: outputs[k] for k in ("images", "token_ids", "padding_mask")},
            {"images": (2, 16, 16, 3), "token_ids": (2, 6), "padding_mask": (2, 6)},
        )
        # The same in tf.data, where the pipelines run it.
        dataset = tf.data.Dataset.from_tensor_slices(batch).batch(2).map(preprocessor)
        (traced,) = list(dataset)
        for key in ("images", "token_ids", "padding_mask"):
            self.assertAllEqual(traced[key], outputs[key])

    def test_pipeline_takes_the_model(self):
        model = self.clip()
        examples = tf.data.Dataset.from_tensor_slices(
            {"images": self.pixels.astype("float32") / 255, "captions": self.texts}
        )
        batch = next(iter(data.contrastive_pipeline(
            examples, model, batch_size=2, shuffle_buffer=None, repeat=False, deterministic=True
        )))
        self.assertEqual(batch["token_ids"].shape, (2, 6))
        self.assertAllEqual(batch["token_ids"][0], [2, 4, 5, 6, 3, 0])

    def test_encode_images_takes_arrays_of_any_size_paths_and_bytes(self):
        model = self.clip()
        expected = model.encode_images(self.pixels.astype("float32") / 255.0)
        self.assertAllClose(model.encode_images(self.pixels), expected, atol=1e-6)
        paths = []
        for i, pixels in enumerate(self.pixels):
            paths.append(os.path.join(self.get_temp_dir(), f"{i}.png"))
            Image.fromarray(pixels).save(paths[-1])
        self.assertAllClose(model.encode_images(paths), expected, atol=1e-6)
        files = [encode(p) for p in self.pixels]
        self.assertAllClose(model.encode_images(files), expected, atol=1e-6)
        mixed = model.encode_images([paths[0], files[1], self.pixels[2]])
        self.assertAllClose(mixed, expected, atol=1e-6)

        # Grayscale, RGBA and other sizes are converted as training did.
        gray = np.repeat(self.pixels[:1, ..., :1], 3, axis=-1)
        self.assertAllClose(
            model.encode_images(self.pixels[:1, ..., :1]), model.encode_images(gray), atol=1e-6
        )
        rgba = np.concatenate([self.pixels, np.full((3, 16, 16, 1), 7, np.uint8)], axis=-1)
        self.assertAllClose(model.encode_images(rgba), expected, atol=1e-6)
        large = np.repeat(np.repeat(self.pixels, 2, axis=1), 2, axis=2)  # 32x32, area-averaged back
        self.assertAllClose(model.encode_images(large), expected, atol=1e-5)
        self.assertEqual(model.encode_images([np.zeros((7, 50, 3), "uint8")]).shape, (1, 8))

    def test_bad_images_are_refused_naming_the_item(self):
        model = self.clip()
        with self.assertRaisesRegex(ValueError, r"`images\[1\]` is not a decodable"):
            model.encode_images([encode(self.pixels[0]), b"not an image"])
        with self.assertRaisesRegex(ValueError, r"`images\[0\]` names an image file that cannot"):
            model.encode_images([os.path.join(self.get_temp_dir(), "missing.png")])
        with self.assertRaisesRegex(ValueError, "channels"):
            model.encode_images(np.zeros((1, 16, 16, 5), "uint8"))
        with self.assertRaisesRegex(ValueError, "must be a batch"):
            model.encode_images("photo.png")

    def test_strings_empty_long_and_not_utf8(self):
        model = self.clip()
        tokens = model.preprocessor.tokenize_strings(self.texts)
        as_dict = {"token_ids": tokens[0], "padding_mask": tokens[1]}
        self.assertAllEqual(tokens[0][2], [2, 3, 0, 0, 0, 0])  # empty: start, end
        self.assertAllClose(model.encode_text(self.texts), model.encode_text(as_dict), atol=1e-6)
        long_ids, _ = model.preprocessor.tokenize_strings(["red " * 100])
        self.assertAllEqual(long_ids, [[2, 5, 5, 5, 5, 3]])  # cut, end token kept
        # Invalid UTF-8 is replaced (U+FFFD, an unknown word), never an error.
        self.assertAllClose(
            model.encode_text([b"\xff\xfe red"]), model.encode_text(["\ufffd red"]), atol=1e-6
        )
        with self.assertRaisesRegex(ValueError, "takes strings"):
            model.encode_text([1, 2])

    def test_vocabulary_size_mismatch_names_both_sizes(self):
        with self.assertRaisesRegex(ValueError, r"tokenizer has 10 tokens, the model vocabulary_size=9"):
            self.clip(DualEncoderPreprocessor(TextTokenizer(VOCABULARY + ["green"])))

    def test_mismatched_length_or_image_shape_is_refused(self):
        with self.assertRaisesRegex(ValueError, "preprocessor sequence_length=7, model sequence_length=6"):
            self.clip(DualEncoderPreprocessor(TextTokenizer(VOCABULARY), sequence_length=7))
        with self.assertRaisesRegex(ValueError, r"converter image_shape=\(8, 8, 3\)"):
            self.clip(DualEncoderPreprocessor(TextTokenizer(VOCABULARY), image_converter=(8, 8)))
        with self.assertRaisesRegex(ValueError, "must be a DualEncoderPreprocessor"):
            self.clip(TextTokenizer(VOCABULARY))
        with self.assertRaisesRegex(ValueError, "`sequence_length` must be an int"):
            DualEncoderPreprocessor(TextTokenizer(VOCABULARY), sequence_length=1)
        with self.assertRaisesRegex(ValueError, "not both"):
            DualEncoderPreprocessor(image_converter=(8, 8), video_converter=(4, 8, 8))

    def test_strings_without_a_tokenizer(self):
        model = build_dual_encoder(image_tower(), text_tower(), projection_dim=8)
        with self.assertRaisesRegex(ValueError, "no tokenizer.*Received: 1 strings"):
            model.encode_text(["a red circle"])
        with self.assertRaisesRegex(ValueError, "no preprocessor with a tokenizer"):
            export_dual_encoder(model, os.path.join(self.get_temp_dir(), "clip"))

    def test_saving_keeps_the_preprocessor_and_its_vocabulary(self):
        model = self.clip()
        inputs = {"images": self.pixels.astype("float32") / 255}
        inputs.update(zip(("token_ids", "padding_mask"), model.preprocessor.tokenize_strings(self.texts)))
        restored = self.run_model_saving_test(model, inputs)
        self.assertIsInstance(restored.preprocessor, DualEncoderPreprocessor)
        self.assertEqual(restored.preprocessor.tokenizer.get_vocabulary(), VOCABULARY)
        self.assertEqual(restored.preprocessor.sequence_length, 6)
        self.assertAllClose(restored.encode_text(self.texts), model.encode_text(self.texts), atol=1e-6)
        json.dumps(model.get_config())  # JSON-clean

    def test_a_file_whose_vocabulary_does_not_match_fails_at_load(self):
        path = os.path.join(self.get_temp_dir(), "model.keras")
        self.clip().save(path)
        broken = os.path.join(self.get_temp_dir(), "broken.keras")
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(broken, "w") as target:
            for item in source.infolist():
                content = source.read(item.filename)
                if item.filename.endswith("vocabulary.txt"):
                    content += b"green\n"
                target.writestr(item, content)
        with self.assertRaisesRegex(ValueError, "holds 10 tokens.*vocabulary_size=9"):
            keras.saving.load_model(broken, safe_mode=True)

    def test_two_views_share_one_converter(self):
        model = build_two_view_encoder(
            image_tower(), projection_dim=8, projection_intermediate_dim=16,
            preprocessor=DualEncoderPreprocessor(),
        )
        self.assertIsNone(model.preprocessor.tokenizer)
        expected = model.encode_images(self.pixels)
        large = np.repeat(np.repeat(self.pixels, 2, axis=1), 2, axis=2)
        self.assertAllClose(model.encode_images(large, view=2), expected, atol=1e-5)
        views = {"view_1_images": self.pixels, "view_2_images": large}
        converted = model.preprocessor(views)
        self.assertEqual(converted["view_2_images"].shape, (3, 16, 16, 3))
        restored = self.run_model_saving_test(model, converted)
        self.assertAllClose(restored.encode_images([encode(p) for p in self.pixels]), expected, atol=1e-6)
        with self.assertRaisesRegex(ValueError, "without a tokenizer"):
            build_two_view_encoder(
                image_tower(), projection_dim=8,
                preprocessor=DualEncoderPreprocessor(TextTokenizer(VOCABULARY)),
            )

    def test_video_tower_gets_a_video_converter(self):
        videos = build_video_encoder(
            num_frames=4, image_shape=(16, 16, 3), tubelet_size=(2, 8, 8), num_layers=1,
            num_heads=2, hidden_dim=16, intermediate_dim=32,
        )
        model = build_dual_encoder(
            videos, text_tower(), projection_dim=8,
            preprocessor=DualEncoderPreprocessor(TextTokenizer(VOCABULARY)),
        )
        self.assertEqual(model.preprocessor.video_converter.num_frames, 4)
        clips = np.random.RandomState(1).randint(0, 256, (2, 4, 16, 16, 3), dtype=np.uint8)
        expected = model.encode_images(clips.astype("float32") / 255)
        large = np.repeat(np.repeat(clips, 2, axis=2), 2, axis=3)
        self.assertAllClose(model.encode_images(large), expected, atol=1e-5)
        with self.assertRaisesRegex(ValueError, r"shape \(batch, 4, height"):
            model.encode_images(clips[:, :3])
        with self.assertRaisesRegex(ValueError, "needs a `video_converter`"):
            build_dual_encoder(
                videos, text_tower(), projection_dim=8,
                preprocessor=DualEncoderPreprocessor(TextTokenizer(VOCABULARY), (16, 16)),
            )


    def test_keras_hub_bert_tokenizer_and_tower(self):
        # [CLS] / [SEP] are read from the tokenizer; the tower gets segment ids.
        vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + VOCABULARY[4:]
        tower = keras_hub.models.BertBackbone(
            vocabulary_size=len(vocabulary), num_layers=1, num_heads=2, hidden_dim=16,
            intermediate_dim=32, max_sequence_length=16, name="bert",
        )
        tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary)
        model = build_dual_encoder(
            image_tower(), tower, projection_dim=8,
            preprocessor=DualEncoderPreprocessor(tokenizer, sequence_length=8),
        )
        token_ids, _ = model.preprocessor.tokenize_strings(["a red circle"])
        self.assertAllEqual(token_ids, [[2, 5, 6, 7, 3, 0, 0, 0]])
        expected = model.encode_text(self.texts)
        path = os.path.join(self.get_temp_dir(), "bert.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
        self.assertAllClose(restored.encode_text(self.texts), expected, atol=1e-6)
        serving = tf.saved_model.load(
            export_dual_encoder(model, os.path.join(self.get_temp_dir(), "bert"))
        )
        served = serving.signatures["encode_text"](texts=tf.constant(self.texts))
        self.assertAllClose(served["embeddings"], expected, atol=1e-5)


# Run in a fresh process: first the SavedModel with only tensorflow and
# tensorflow_text imported, then the `.keras` file with mmzoo.
_FRESH_PROCESS = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tf-text ops

io = np.load({inputs!r}, allow_pickle=True)
serving = tf.saved_model.load({saved_model!r})
served_images = serving.signatures["encode_images"](images=tf.constant(io["files"]))
served_text = serving.signatures["encode_text"](texts=tf.constant(io["texts"]))
bad = [m for m in ("mmzoo", "keras_hub") if m in sys.modules]
if bad:
    raise SystemExit("imported in the serving process: " + ", ".join(bad))

import keras
import mmzoo  # noqa: F401  registers the mmzoo classes
model = keras.saving.load_model({model_path!r}, safe_mode=True)
arrays = [io["gray"], io["rgba"], io["large"]]
np.savez(
    {outputs!r},
    served_images=served_images["embeddings"].numpy(),
    served_status=served_images["status"].numpy(),
    served_text=served_text["embeddings"].numpy(),
    arrays=model.encode_images(arrays),
    paths=model.encode_images(list(io["paths"])),
    files=model.encode_images(list(io["files"])),
    texts=model.encode_text(list(io["texts"])),
)
"""


class DualEncoderAcceptanceTest(TestCase):
    def test_trained_saved_loaded_and_served_give_the_same_embeddings(self):
        # The tiny preset, trained a few steps with its own preprocessor.
        examples = data.load_synthetic("shapes_captions", "train", num_examples=32, image_size=32)
        vocabulary = data.train_word_piece_vocabulary(
            examples.map(lambda x: x["captions"]), vocabulary_size=48
        )
        tokenizer = TextTokenizer(vocabulary)
        model = presets.build_from_preset(
            "dual_encoder_tiny", text_encoder={"vocabulary_size": tokenizer.vocabulary_size},
            preprocessor=DualEncoderPreprocessor(tokenizer),
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=CLIPLoss(), jit_compile=False)
        model.fit(
            data.contrastive_pipeline(examples, model, batch_size=8, shuffle_buffer=32, seed=0),
            steps_per_epoch=3, epochs=1, verbose=0,
        )

        # Raw inputs: arrays of other sizes and channel counts, files, bytes, strings.
        rng = np.random.RandomState(0)
        gray = rng.randint(0, 256, (24, 40, 1), dtype=np.uint8)
        rgba = rng.randint(0, 256, (32, 32, 4), dtype=np.uint8)
        large = rng.rand(64, 48, 3).astype("float32")
        pixels = [rng.randint(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)]
        files = [encode(pixels[0], "PNG"), encode(pixels[1], "JPEG"), encode(gray[..., 0], "PNG")]
        paths = []
        for i, content in enumerate(files):
            paths.append(os.path.join(self.get_temp_dir(), f"image_{i}"))
            with open(paths[-1], "wb") as f:
                f.write(content)
        texts = ["a small red circle", "", "blue " * 80, "a large green square"]
        expected = {
            "arrays": model.encode_images([gray, rgba, large]),
            "paths": model.encode_images(paths),
            "files": model.encode_images(files),
            "texts": model.encode_text(texts),
        }
        self.assertAllClose(expected["paths"], expected["files"], atol=1e-6)

        model_path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(model_path)
        saved_model = export_dual_encoder(model, os.path.join(self.get_temp_dir(), "serving"))
        inputs = os.path.join(self.get_temp_dir(), "inputs.npz")
        outputs = os.path.join(self.get_temp_dir(), "outputs.npz")
        np.savez(
            inputs, gray=gray, rgba=rgba, large=large, paths=np.array(paths),
            files=np.array(files, dtype=object), texts=np.array(texts, dtype=object),
        )
        script = textwrap.dedent(_FRESH_PROCESS).format(
            inputs=inputs, saved_model=saved_model, model_path=model_path, outputs=outputs
        )
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.run(
            [sys.executable, "-c", script], cwd=self.get_temp_dir(), env=env,
            capture_output=True, text=True, timeout=600,
        )
        self.assertEqual(proc.returncode, 0, msg=f"fresh process failed:\n{proc.stderr[-4000:]}")
        with np.load(outputs, allow_pickle=True) as f:
            loaded = {k: f[k] for k in f.files}
        for key, value in expected.items():
            self.assertAllEqual(loaded[key], value, msg=key)  # identical after loading
        self.assertAllEqual(loaded["served_status"], [b"ok"] * 3)
        self.assertAllClose(loaded["served_images"], expected["files"], atol=1e-5)
        self.assertAllClose(loaded["served_text"], expected["texts"], atol=1e-5)
