import io
import json
import os
import zipfile

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from mmzoo import presets
from mmzoo.data import TextTokenizer
from mmzoo.encoders import build_text_encoder
from mmzoo.encoders import build_video_encoder
from mmzoo.encoders import build_vit_image_encoder
from mmzoo.losses import CLIPLoss
from mmzoo.losses import NTXentLoss
from mmzoo.losses import SigLIPLoss
from mmzoo.models import TwoViewEncoder
from mmzoo.models import build_two_view_encoder
from mmzoo.models.dual_encoder import DualEncoderPreprocessor
from mmzoo.testing import TestCase


def image_tower(name="vit_image_encoder", dtype=None):
    return build_vit_image_encoder(
        image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2,
        hidden_dim=16, intermediate_dim=32, name=name, dtype=dtype,
    )


def simclr_builder(dtype=None, **kwargs):
    return build_two_view_encoder(image_tower(dtype=dtype), dtype=dtype, **kwargs)


def png(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


class TwoViewEncoderTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.RandomState(0)
        self.images = rng.rand(4, 16, 16, 3).astype("float32")
        self.views = {"view_1_images": self.images, "view_2_images": self.images[:, :, ::-1]}
        self.init_kwargs = {"projection_dim": 8, "projection_intermediate_dim": 16}

    def test_builder_basics(self):
        model = self.run_model_builder_test(
            simclr_builder, self.init_kwargs, self.views,
            {"view_1_embeddings": (4, 8), "view_2_embeddings": (4, 8), "logit_scale": (4,)},
            run_mixed_precision_check=False,  # the head stays float32 (checked below)
        )
        self.assertIsInstance(model, TwoViewEncoder)
        self.assertEqual(sorted(model.input), ["view_1_images", "view_2_images"])
        outputs = model(self.views)
        norms = np.linalg.norm(outputs["view_2_embeddings"], axis=-1)
        self.assertAllClose(norms, np.ones(4), atol=1e-5)
        self.assertAllClose(outputs["logit_scale"], np.full(4, 1 / 0.07), atol=1e-3)

    def test_one_shared_tower_and_projection(self):
        model = simclr_builder(**self.init_kwargs)
        self.assertIsNone(model.second_encoder)
        self.assertIs(model.second_projection, model.image_projection)
        # One set of weights: the tower's, one projection's and the scale.
        expected = (
            len(model.encoder.weights) + len(model.image_projection.weights)
            + len(model.head.weights)
        )
        self.assertLen(model.weights, expected)
        self.assertLen({id(w) for w in model.weights}, expected)
        # The same image in both views gives the same embedding.
        outputs = model({"view_1_images": self.images, "view_2_images": self.images})
        self.assertAllClose(outputs["view_1_embeddings"], outputs["view_2_embeddings"], atol=1e-6)
        self.assertAllClose(model.encode_images(self.images), outputs["view_1_embeddings"], atol=1e-5)
        self.assertAllClose(
            model.encode_images(self.images, view=2), outputs["view_2_embeddings"], atol=1e-5
        )
        # Passing the tower twice is the shared case too.
        encoder = image_tower()
        twice = build_two_view_encoder(encoder, 8, second_encoder=encoder)
        self.assertIsNone(twice.second_encoder)
        self.assertIsNone(twice.get_config()["second_encoder"])

    def test_fit_with_nt_xent_trains_the_shared_tower(self):
        model = simclr_builder(
            initial_temperature=0.1, trainable_temperature=False, **self.init_kwargs
        )
        before = [np.array(w) for w in model.encoder.trainable_weights]
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=NTXentLoss(), jit_compile=False)
        ds = tf.data.Dataset.from_tensors(self.views).repeat()
        history = model.fit(ds, steps_per_epoch=5, epochs=2, verbose=0)
        losses = history.history["loss"]
        self.assertTrue(np.all(np.isfinite(losses)))
        self.assertLess(losses[1], losses[0])
        moved = [
            not np.allclose(b, np.array(w))
            for w, b in zip(model.encoder.trainable_weights, before)
        ]
        self.assertTrue(all(moved), msg="every weight of the shared tower gets a gradient")
        self.assertAllClose(model.head.logit_scale, 10.0, atol=1e-5)  # fixed temperature

    def test_clip_and_siglip_losses_on_two_views(self):
        for loss, kwargs in (
            (CLIPLoss(), {}),
            (SigLIPLoss(), {"use_bias": True, "initial_bias": -10.0, "initial_temperature": 0.1}),
        ):
            with self.subTest(loss=loss.name):
                model = simclr_builder(projection_dim=8, **kwargs)
                model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, jit_compile=False)
                ds = tf.data.Dataset.from_tensors(self.views).repeat()
                history = model.fit(ds, steps_per_epoch=3, epochs=2, verbose=0)
                self.assertLess(history.history["loss"][1], history.history["loss"][0])

    def test_a_second_tower_of_the_same_modality(self):
        model = build_two_view_encoder(
            image_tower(), 8, second_encoder=image_tower("second_image_encoder"),
            freeze_encoder=True,
        )
        self.assertEqual(model.second_encoder.name, "second_image_encoder")
        self.assertIsNot(model.second_projection, model.image_projection)
        self.assertFalse(model.encoder.trainable)
        self.assertTrue(model.second_encoder.trainable)
        outputs = model({"view_1_images": self.images, "view_2_images": self.images})
        # Separate towers: the same image gives different embeddings.
        self.assertGreater(
            np.abs(outputs["view_1_embeddings"] - outputs["view_2_embeddings"]).max(), 1e-3
        )
        self.assertAllClose(
            model.encode_images(self.images, view=2), outputs["view_2_embeddings"], atol=1e-5
        )
        frozen = {id(w) for w in model.encoder.weights}
        self.assertFalse(frozen & {id(w) for w in model.trainable_weights})
        restored = self.run_model_saving_test(model, self.views)
        self.assertFalse(restored.encoder.trainable)
        self.assertEqual(restored.second_encoder.name, "second_image_encoder")

    def test_video_towers(self):
        model = build_two_view_encoder(
            build_video_encoder(
                num_frames=4, image_shape=(16, 16, 3), tubelet_size=(2, 8, 8), num_layers=1,
                num_heads=2, hidden_dim=16, intermediate_dim=32,
            ),
            projection_dim=8,
        )
        self.assertEqual(model.modality, "video")
        self.assertEqual(sorted(model.input), ["view_1_videos", "view_2_videos"])
        videos = np.random.RandomState(1).rand(2, 4, 16, 16, 3).astype("float32")
        outputs = model({"view_1_videos": videos, "view_2_videos": videos})
        self.assertAllClose(model.encode_images(videos), outputs["view_1_embeddings"], atol=1e-5)

    def test_saving_gives_identical_embeddings(self):
        model = simclr_builder(use_bias=True, initial_bias=-3.0, **self.init_kwargs)
        restored = self.run_model_saving_test(model, self.views)
        self.assertIsInstance(restored, TwoViewEncoder)
        self.assertIsNone(restored.second_encoder)
        self.assertIs(restored.second_projection, restored.image_projection)
        self.assertAllEqual(restored.encode_images(self.images), model.encode_images(self.images))
        self.assertAllClose(restored(self.views)["logit_bias"], np.full(4, -3.0))

    def test_two_view_dual_encoder_files_load_as_two_view_encoders(self):
        # A `.keras` file from before `TwoViewEncoder`: a `DualEncoder`
        # config with `text_encoder=None` and the same layer names.
        model = simclr_builder(**self.init_kwargs)
        path = os.path.join(self.get_temp_dir(), "new.keras")
        model.save(path)
        old = os.path.join(self.get_temp_dir(), "old.keras")
        with zipfile.ZipFile(path) as source, zipfile.ZipFile(old, "w") as target:
            for item in source.infolist():
                content = source.read(item.filename)
                if item.filename == "config.json":
                    saved = json.loads(content)
                    config = saved["config"]
                    config["image_encoder"] = config.pop("encoder")
                    config["text_encoder"] = config.pop("second_encoder")
                    config["freeze_image_encoder"] = config.pop("freeze_encoder")
                    config["freeze_text_encoder"] = config.pop("freeze_second_encoder")
                    saved.update(
                        class_name="DualEncoder", registered_name="mmzoo>DualEncoder",
                        module="mmzoo.models.dual_encoder.dual_encoder_model",
                    )
                    content = json.dumps(saved).encode()
                target.writestr(item, content)
        restored = keras.saving.load_model(old, safe_mode=True)
        self.assertIsInstance(restored, TwoViewEncoder)
        self.assertAllEqual(restored.encode_images(self.images), model.encode_images(self.images))

    def test_mixed_precision(self):
        model = simclr_builder(dtype="mixed_bfloat16", **self.init_kwargs)
        for w in model.weights:
            self.assertEqual(w.dtype, "float32", msg=w.path)
        self.assertEqual(model.image_projection.compute_dtype, "bfloat16")
        outputs = model(self.views)
        for key in ("view_1_embeddings", "view_2_embeddings", "logit_scale"):
            self.assertEqual(keras.backend.standardize_dtype(outputs[key].dtype), "float32")

    def test_preprocessor_converts_both_views(self):
        model = simclr_builder(preprocessor=DualEncoderPreprocessor(), **self.init_kwargs)
        self.assertIsNone(model.preprocessor.tokenizer)
        self.assertEqual(tuple(model.preprocessor.image_converter.image_shape), (16, 16, 3))
        pixels = np.random.RandomState(2).randint(0, 256, (3, 16, 16, 3), dtype=np.uint8)
        expected = model.encode_images(pixels.astype("float32") / 255)
        large = np.repeat(np.repeat(pixels, 2, axis=1), 2, axis=2)
        self.assertAllClose(model.encode_images(large), expected, atol=1e-5)
        self.assertAllClose(model.encode_images([png(p) for p in pixels]), expected, atol=1e-5)
        converted = model.preprocessor({"view_1_images": pixels, "view_2_images": large})
        self.assertEqual(converted["view_2_images"].shape, (3, 16, 16, 3))
        restored = self.run_model_saving_test(model, converted)
        self.assertAllClose(restored.encode_images(large), expected, atol=1e-5)

    def test_preset(self):
        model = presets.build_from_preset("dual_encoder_simclr_tiny")
        self.assertIsInstance(model, TwoViewEncoder)
        self.assertIsNone(model.second_encoder)
        self.assertEqual(model.projection_intermediate_dim, 64)
        self.assertFalse(model.trainable_temperature)
        self.assertAllClose(model.head.logit_scale, 10.0)
        self.assertEqual(sorted(model.input), ["view_1_images", "view_2_images"])

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "Received: encoder='vit'"):
            build_two_view_encoder("vit", 8)
        with self.assertRaisesRegex(ValueError, "Received: projection_dim=0"):
            simclr_builder(projection_dim=0)
        text = build_text_encoder(
            vocabulary_size=20, sequence_length=6, num_layers=1, num_heads=2,
            hidden_dim=16, intermediate_dim=32,
        )
        with self.assertRaisesRegex(ValueError, "build_dual_encoder.*named 'text_encoder'"):
            build_two_view_encoder(text, 8)
        with self.assertRaisesRegex(
            ValueError, "must take images, as `encoder` does.*Received: second_encoder=an encoder named 'text_encoder'"
        ):
            build_two_view_encoder(image_tower(), 8, second_encoder=text)
        with self.assertRaisesRegex(ValueError, "different names"):
            build_two_view_encoder(image_tower(), 8, second_encoder=image_tower())
        with self.assertRaisesRegex(ValueError, "Received: freeze_second_encoder=True"):
            simclr_builder(projection_dim=8, freeze_second_encoder=True)
        with self.assertRaisesRegex(ValueError, "without a tokenizer"):
            simclr_builder(
                projection_dim=8,
                preprocessor=DualEncoderPreprocessor(TextTokenizer(["[PAD]", "[UNK]", "[START]", "[END]", "a"])),
            )
        other_size = build_vit_image_encoder(
            image_shape=(32, 32, 3), patch_size=8, num_layers=1, num_heads=2,
            hidden_dim=16, intermediate_dim=32, name="large_image_encoder",
        )
        with self.assertRaisesRegex(ValueError, r"second_encoder input \(32, 32, 3\)"):
            build_two_view_encoder(
                image_tower(), 8, second_encoder=other_size,
                preprocessor=DualEncoderPreprocessor(),
            )
        model = simclr_builder(projection_dim=8)
        with self.assertRaisesRegex(ValueError, "Received: view=3"):
            model.encode_images(self.images, view=3)
        with self.assertRaisesRegex(ValueError, "Received: view_2_embeddings with dtype"):
            model.pair_logits(np.zeros((2, 8)), np.zeros((2, 4)))
