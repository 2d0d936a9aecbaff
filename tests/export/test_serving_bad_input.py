"""What the serving signatures answer to bad input: one test per case.

Images over the pixel limit are refused from their header, before anything
is decoded (a 747 KB PNG of 16000x16000 zeros once took a server to 4.7 GB).
"""

import io
import os
import shutil
import struct
import tempfile
import zlib

import numpy as np
import tensorflow as tf
from PIL import Image

from mmzoo.data import TextTokenizer
from mmzoo.encoders import build_text_encoder
from mmzoo.encoders import build_video_encoder
from mmzoo.encoders import build_vit_image_encoder
from mmzoo.export import export_dual_encoder
from mmzoo.export import export_image_captioning_model
from mmzoo.export import export_video_qa_model
from mmzoo.data.images import DEFAULT_MAX_IMAGE_PIXELS
from mmzoo.data.images import decode_image_batch
from mmzoo.data.images import image_pixels
from mmzoo.models import build_dual_encoder
from mmzoo.models.dual_encoder import DualEncoderPreprocessor
from mmzoo.models import ImageCaptioningPreprocessor
from mmzoo.models import build_image_captioning_model
from mmzoo.models import build_video_qa_model
from mmzoo.testing import TestCase

VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]"] + [f"w{i}" for i in range(8)]


def encode(array, fmt, **kwargs):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def png_header(width, height):
    """A PNG signature and IHDR for an image of this size, with no pixel data."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def jpeg_claiming(width, height):
    """A real JPEG whose frame header (SOF0) claims another size."""
    data = bytearray(encode(np.zeros((8, 8, 3), np.uint8), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


class ImageHeaderTest(TestCase):
    def test_pixel_count_from_every_format_header(self):
        image = np.zeros((10, 12, 3), np.uint8)
        rgba = np.zeros((10, 12, 4), np.uint8)
        files = {
            "jpeg": encode(image, "JPEG"),
            "png": encode(image, "PNG"),
            "gif": encode(image, "GIF"),
            "bmp": encode(image, "BMP"),
            "webp lossy (VP8)": encode(image, "WEBP"),
            "webp lossless (VP8L)": encode(image, "WEBP", lossless=True),
            "webp extended (VP8X)": encode(rgba, "WEBP"),
        }
        for name, data in files.items():
            self.assertEqual(int(image_pixels(tf.constant(data))), 120, msg=name)

    def test_headers_claiming_huge_sizes(self):
        self.assertEqual(int(image_pixels(tf.constant(png_header(16000, 16000)))), 256_000_000)
        self.assertEqual(int(image_pixels(tf.constant(jpeg_claiming(20000, 10000)))), 200_000_000)

    def test_unknown_bytes_count_zero(self):
        self.assertEqual(int(image_pixels(tf.constant(b"plain text, not an image"))), 0)


class CaptionServingTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        encoder = build_vit_image_encoder(
            image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2,
            hidden_dim=16, intermediate_dim=32,
        )
        model = build_image_captioning_model(
            encoder, vocabulary_size=12, sequence_length=6, num_layers=1,
            num_heads=2, hidden_dim=8, intermediate_dim=16,
            preprocessor=ImageCaptioningPreprocessor(TextTokenizer(VOCABULARY), (16, 16)),
        )
        cls.directory = tempfile.mkdtemp()
        cls.path = os.path.join(cls.directory, "captioner")
        export_image_captioning_model(model, cls.path, max_image_pixels=300)
        cls.pixels = np.random.RandomState(0).randint(0, 256, (16, 16, 3), dtype=np.uint8)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.directory, ignore_errors=True)
        super().tearDownClass()

    def serve(self, images):
        caption = tf.saved_model.load(self.path).signatures["caption"]
        return caption(images=tf.constant(images))

    def test_images_over_the_limit_are_refused_before_decoding(self):
        small = encode(self.pixels, "PNG")  # 256 pixels
        larger = encode(np.zeros((20, 20, 3), np.uint8), "PNG")  # 400 pixels
        batch = [small, png_header(16000, 16000), larger, jpeg_claiming(30000, 30000),
                 b"not an image"]
        served = self.serve(batch)
        self.assertAllEqual(
            served["status"],
            [b"ok", b"image too large", b"image too large", b"image too large",
             b"undecodable image"],
        )
        self.assertAllEqual(served["captions"][1:], [b""] * 4)
        self.assertAllEqual(served["token_ids"][1], [0] * 6)
        # The rest of the batch is unaffected.
        alone = self.serve([small])
        self.assertAllEqual(served["token_ids"][0], alone["token_ids"][0])

    def test_truncated_header(self):
        served = self.serve([png_header(16, 16)[:12], b"\xff\xd8\xff"])
        self.assertAllEqual(served["status"], [b"undecodable image"] * 2)

    def test_default_limit(self):
        # What every exporter uses unless told otherwise (the signatures call this).
        self.assertEqual(DEFAULT_MAX_IMAGE_PIXELS, 50_000_000)
        _, valid, too_large = decode_image_batch(
            tf.constant([png_header(16000, 16000), encode(self.pixels, "PNG")]), (16, 16))
        self.assertAllEqual(too_large, [True, False])
        self.assertAllEqual(valid, [False, True])

    def test_no_limit(self):
        # Without a limit the header is not checked; a header with no pixel
        # data then fails to decode, alone.
        _, valid, too_large = decode_image_batch(
            tf.constant([png_header(16000, 16000)]), (16, 16), max_pixels=None)
        self.assertAllEqual(too_large, [False])
        self.assertAllEqual(valid, [False])


class DualEncoderServingTest(TestCase):
    def test_images_over_the_limit(self):
        image = build_vit_image_encoder(
            image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2, hidden_dim=16,
            intermediate_dim=32,
        )
        text = build_text_encoder(
            vocabulary_size=12, sequence_length=7, num_layers=1, num_heads=2, hidden_dim=16,
            intermediate_dim=32,
        )
        model = build_dual_encoder(
            image, text, projection_dim=8,
            preprocessor=DualEncoderPreprocessor(TextTokenizer(VOCABULARY)),
        )
        path = os.path.join(self.get_temp_dir(), "clip")
        export_dual_encoder(model, path, max_image_pixels=300)
        encode_images = tf.saved_model.load(path).signatures["encode_images"]
        good = encode(np.zeros((16, 16, 3), np.uint8), "PNG")
        served = encode_images(images=tf.constant([png_header(640, 480), good]))
        self.assertAllEqual(served["status"], [b"image too large", b"ok"])
        self.assertAllEqual(served["embeddings"][0], np.zeros(8))


class VideoQAServingTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        video = build_video_encoder(
            num_frames=4, image_shape=(16, 16, 3), tubelet_size=(2, 8, 8), num_layers=1,
            num_heads=2, hidden_dim=16, intermediate_dim=32,
        )
        question = build_text_encoder(
            vocabulary_size=12, sequence_length=6, num_layers=1, num_heads=2, hidden_dim=16,
            intermediate_dim=32,
        )
        from mmzoo.models import VideoQAPreprocessor

        model = build_video_qa_model(
            video, question, answer_vocabulary=["red", "blue"], num_fusion_layers=1,
            num_heads=2, hidden_dim=8, intermediate_dim=16,
            preprocessor=VideoQAPreprocessor(TextTokenizer(VOCABULARY)),
        )
        cls.directory = tempfile.mkdtemp()
        cls.path = os.path.join(cls.directory, "video_qa")
        export_video_qa_model(model, cls.path, max_image_pixels=300)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.directory, ignore_errors=True)
        super().tearDownClass()

    def signatures(self):
        return tf.saved_model.load(self.path).signatures

    def test_uint8_frames_over_the_limit(self):
        frames = np.zeros((2, 4, 20, 20, 3), np.uint8)  # 400 pixels a frame
        served = self.signatures()["answer"](
            frames=tf.constant(frames), questions=tf.constant(["w1", "w2"])
        )
        self.assertAllEqual(served["status"], [b"frame too large"] * 2)
        self.assertAllEqual(served["answers"], [b"", b""])
        ok = self.signatures()["answer"](
            frames=tf.constant(np.zeros((1, 4, 16, 16, 3), np.uint8)),
            questions=tf.constant(["w1"]),
        )
        self.assertAllEqual(ok["status"], [b"ok"])

    def test_encoded_frames_over_the_limit(self):
        good = encode(np.zeros((16, 16, 3), np.uint8), "PNG")
        clips = [[good] * 4, [good, good, png_header(16000, 16000), good], [good, b"x", good, good]]
        served = self.signatures()["answer_encoded"](
            frames=tf.constant(clips), questions=tf.constant(["w1", "w1", "w1"])
        )
        self.assertAllEqual(
            served["status"], [b"ok", b"frame too large", b"undecodable frame"]
        )
        self.assertAllEqual(served["answers"][1:], [b"", b""])
