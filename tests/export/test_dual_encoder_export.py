import io
import os
import shutil

import numpy as np
import tensorflow as tf
from PIL import Image

from mmzoo.data import TextTokenizer
from mmzoo.encoders import build_text_encoder
from mmzoo.encoders import build_vit_image_encoder
from mmzoo.export import export_dual_encoder
from mmzoo.models import build_dual_encoder
from mmzoo.models import build_two_view_encoder
from mmzoo.models.dual_encoder import DualEncoderPreprocessor
from mmzoo.testing import TestCase

VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]", "a", "red", "blue", "circle", "square"]


def png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


class DualEncoderExportTest(TestCase):
    def setUp(self):
        super().setUp()
        image_encoder = build_vit_image_encoder(
            image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2,
            hidden_dim=16, intermediate_dim=32,
        )
        text_encoder = build_text_encoder(
            vocabulary_size=len(VOCABULARY), sequence_length=6, num_layers=1, num_heads=2,
            hidden_dim=16, intermediate_dim=32,
        )
        self.model = build_dual_encoder(
            image_encoder, text_encoder, projection_dim=8, use_bias=True, initial_bias=-3.0,
            preprocessor=DualEncoderPreprocessor(TextTokenizer(VOCABULARY)),
        )
        rng = np.random.RandomState(0)
        self.pixels = [rng.randint(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)]

    def export(self, path):
        return export_dual_encoder(self.model, path)

    def test_served_embeddings_equal_keras(self):
        # Exported once; each signature is then called in a process without mmzoo.
        exported = self.export(os.path.join(self.get_temp_dir(), "exported"))

        def copy(path):
            shutil.copytree(exported, path)

        images = np.array([png(p) for p in self.pixels] + [b"not an image"], dtype=object)
        expected = self.model.encode_images(np.stack(self.pixels).astype("float32") / 255.0)
        served = self.run_export_test(
            input_data={"images": images},
            export_fn=copy,
            endpoint="encode_images",
            expected_output={
                "embeddings": np.concatenate([expected, np.zeros((1, 8), "float32")]),
                "status": np.array([b"ok"] * 3 + [b"undecodable image"], dtype=object),
            },
        )
        self.assertAllClose(np.linalg.norm(served["embeddings"][:3], axis=-1), np.ones(3), atol=1e-5)

        texts = ["a red circle", "a blue square", "", "circle circle circle circle circle",
                 b"\xff\xfe red"]  # empty, over-long, not UTF-8
        self.run_export_test(
            input_data={"texts": np.array(texts, dtype=object)},
            export_fn=copy,
            endpoint="encode_text",
            expected_output={"embeddings": self.model.encode_text(texts)},
        )
        # The same SavedModel also serves the learned scale and bias.
        scale = tf.saved_model.load(exported).signatures["logit_scale"]()
        self.assertAllClose(scale["logit_scale"], 1 / 0.07, atol=1e-4)
        self.assertAllClose(scale["logit_bias"], -3.0)

    def test_quantized_model_serves_its_own_embeddings(self):
        self.model.quantize("int8")
        texts = np.array(["a red circle", "a blue square"], dtype=object)
        self.run_export_test(
            input_data={"texts": texts},
            export_fn=self.export,
            endpoint="encode_text",
            expected_output={"embeddings": self.model.encode_text(list(texts))},
        )

    def test_two_views_need_no_preprocessor(self):
        encoder = build_vit_image_encoder(
            image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2,
            hidden_dim=16, intermediate_dim=32,
        )
        model = build_two_view_encoder(encoder, projection_dim=8, projection_intermediate_dim=16)
        path = export_dual_encoder(model, os.path.join(self.get_temp_dir(), "simclr"))
        serving = tf.saved_model.load(path)
        self.assertNotIn("encode_text", serving.signatures)
        served = serving.signatures["encode_images"](images=tf.constant([png(self.pixels[0])]))
        self.assertAllClose(
            served["embeddings"], model.encode_images(self.pixels[0][None]), atol=1e-5
        )

    def test_bad_arguments(self):
        path = self.get_temp_dir()
        bare = build_dual_encoder(
            self.model.image_encoder, self.model.text_encoder, projection_dim=8
        )
        with self.assertRaisesRegex(ValueError, "Received: model.preprocessor=None"):
            export_dual_encoder(bare, path)
        with self.assertRaisesRegex(ValueError, "mmzoo DualEncoder or TwoViewEncoder"):
            export_dual_encoder(object(), path)
