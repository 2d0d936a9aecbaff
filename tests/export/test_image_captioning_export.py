import io
import json
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from mmzoo.data import TextTokenizer
from mmzoo.data import load_image_caption_files
from mmzoo.encoders import build_vit_image_encoder
from mmzoo.export import export_image_captioning_model
from mmzoo.data.images import decode_image_batch
from mmzoo.models import ImageCaptioningPreprocessor
from mmzoo.models import build_image_captioning_model
from mmzoo.testing import TestCase

VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]"] + [f"w{i}" for i in range(8)]


def encode(array, fmt):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


class ImageCaptioningExportTest(TestCase):
    def setUp(self):
        super().setUp()
        encoder = build_vit_image_encoder(
            image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2,
            hidden_dim=16, intermediate_dim=32,
        )
        self.preprocessor = ImageCaptioningPreprocessor(TextTokenizer(VOCABULARY), (16, 16))
        self.model = build_image_captioning_model(
            encoder, vocabulary_size=12, sequence_length=6, num_layers=1,
            num_heads=2, hidden_dim=8, intermediate_dim=16, preprocessor=self.preprocessor,
        )
        rng = np.random.RandomState(0)
        self.pixels = [rng.randint(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)]

    def check_served_captions(self, method):
        """The served captions and ids, in a process without mmzoo, are `generate`'s."""
        images = np.array([encode(p, "PNG") for p in self.pixels], dtype=object)
        pixels = np.stack(self.pixels).astype("float32") / 255.0
        self.model.preprocessor = None  # ids, not strings
        token_ids = self.model.generate(pixels, method=method, num_beams=3)
        self.model.preprocessor = self.preprocessor
        captions = self.model.generate(pixels, method=method, num_beams=3)
        self.run_export_test(
            input_data={"images": images},
            export_fn=lambda path: export_image_captioning_model(
                self.model, path, method=method, num_beams=3
            ),
            endpoint="caption",
            expected_output={
                "captions": np.array([c.encode() for c in captions], dtype=object),
                "token_ids": token_ids,
                "status": np.array([b"ok"] * 3, dtype=object),
            },
        )

    def test_served_captions_equal_generate(self):
        for method in ("greedy", "beam"):
            self.check_served_captions(method)

    def test_quantized_models_serve_their_own_captions(self):
        # int8 with greedy search, int4 with beam search.
        for mode, method in (("int8", "greedy"), ("int4", "beam")):
            self.setUp()
            self.model.quantize(mode)
            self.check_served_captions(method)

    def test_undecodable_bytes_do_not_fail_the_batch(self):
        good = encode(self.pixels[0], "PNG")
        batch = [good, b"not an image at all", encode(self.pixels[1], "JPEG")[:30], good]
        path = os.path.join(self.get_temp_dir(), "captioner")
        export_image_captioning_model(self.model, path)
        served = tf.saved_model.load(path).signatures["caption"](images=tf.constant(batch))
        self.assertAllEqual(served["status"], [b"ok", b"undecodable image", b"undecodable image", b"ok"])
        self.assertAllEqual(served["captions"][1:3], [b"", b""])
        self.assertEqual(served["captions"][0].numpy(), served["captions"][3].numpy())
        self.assertNotEqual(served["captions"][0].numpy(), b"")

    def test_decoding_grayscale_rgba_and_jpeg(self):
        rgb = self.pixels[0]
        gray = rgb[..., 0]
        rgba = np.concatenate([rgb, np.full((16, 16, 1), 255, np.uint8)], axis=-1)
        # JPEG is lossy: a smooth gradient survives it within a few levels.
        yy, xx = np.mgrid[0:16, 0:16]
        smooth = np.stack([yy * 16, xx * 16, (yy + xx) * 8], axis=-1).astype(np.uint8)
        batch = tf.constant([encode(gray, "PNG"), encode(rgba, "PNG"), encode(smooth, "JPEG")])
        images, valid, _ = decode_image_batch(batch, (16, 16, 3))
        self.assertAllEqual(valid, [True, True, True])
        self.assertAllClose(images[0, ..., 0], gray / 255.0, atol=1e-6)
        self.assertAllClose(images[0, ..., 1], gray / 255.0, atol=1e-6)
        self.assertAllClose(images[1], rgb / 255.0, atol=1e-6)
        self.assertAllClose(images[2], smooth / 255.0, atol=0.06)

    def test_served_pixels_equal_the_training_pipelines(self):
        # A JPEG that the loader decodes at 1/2 DCT scale (35x27 -> 18x14,
        # then shrunk), a PNG that is shrunk, a PNG that is enlarged: the
        # serving decoder gives the file loader's pixels, bit for bit.
        rng = np.random.RandomState(1)
        yy, xx = np.mgrid[0:27, 0:35]
        smooth = np.stack([yy * 9, xx * 7, (yy + xx) * 4], axis=-1).astype(np.uint8)
        files = {
            "a.jpg": encode(smooth, "JPEG"),
            "b.png": encode(rng.randint(0, 256, (40, 24, 3), dtype=np.uint8), "PNG"),
            "c.png": encode(rng.randint(0, 256, (9, 12, 3), dtype=np.uint8), "PNG"),
        }
        rows, tmp = [], self.get_temp_dir()
        for name, data in files.items():
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(data)
            rows.append({"image_path": name, "caption": "w1"})
        manifest = os.path.join(tmp, "captions.jsonl")
        with open(manifest, "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
        examples, _ = load_image_caption_files(manifest, image_shape=(12, 16))
        trained = np.stack([x["images"] for x in examples.as_numpy_iterator()])
        served, valid, _ = decode_image_batch(tf.constant(list(files.values())), (12, 16))
        self.assertAllEqual(valid, [True, True, True])
        self.assertEqual(tuple(served.shape), (3, 12, 16, 3))
        self.assertAllEqual(served, trained)

    def test_export_is_atomic_and_replaces(self):
        path = os.path.join(self.get_temp_dir(), "captioner")
        export_image_captioning_model(self.model, path)
        export_image_captioning_model(self.model, path)  # its own: replaced
        os.makedirs(os.path.join(path, "stale"))
        # A directory that is no longer only the export's is replaced only on request
        # (tests/export/test_export_safety.py has every case).
        export_image_captioning_model(self.model, path, overwrite=True)
        self.assertFalse(os.path.exists(os.path.join(path, "stale")))
        self.assertTrue(os.path.exists(os.path.join(path, "saved_model.pb")))
        leftovers = [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".")]
        self.assertEmpty(leftovers)

    def test_bad_arguments(self):
        path = os.path.join(self.get_temp_dir(), "x")
        with self.assertRaisesRegex(ValueError, "Received: method='top_k'"):
            export_image_captioning_model(self.model, path, method="top_k")
        self.model.preprocessor = None
        with self.assertRaisesRegex(ValueError, "no preprocessor"):
            export_image_captioning_model(self.model, path)
        self.assertFalse(os.path.exists(path))

