import keras
import numpy as np
import tensorflow as tf

from mmzoo import presets
from mmzoo.data import TextTokenizer
from mmzoo.encoders import build_text_encoder
from mmzoo.encoders import build_video_encoder
from mmzoo.encoders import build_vit_image_encoder
from mmzoo.losses import CLIPLoss
from mmzoo.losses import SigLIPLoss
from mmzoo.models import DualEncoder
from mmzoo.models.dual_encoder import DualEncoderPreprocessor
from mmzoo.models import build_dual_encoder
from mmzoo.testing import TestCase
from mmzoo.training import Trainer
from mmzoo.training import get_strategy


def image_tower(dtype=None):
    return build_vit_image_encoder(
        image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2,
        hidden_dim=16, intermediate_dim=32, dtype=dtype,
    )


def text_tower(dtype=None):
    return build_text_encoder(
        vocabulary_size=20, sequence_length=6, num_layers=1, num_heads=2,
        hidden_dim=16, intermediate_dim=32, dtype=dtype,
    )


def video_tower():
    return build_video_encoder(
        num_frames=4, image_shape=(16, 16, 3), tubelet_size=(2, 8, 8), num_layers=1,
        num_heads=2, hidden_dim=16, intermediate_dim=32,
    )


def clip_builder(dtype=None, **kwargs):
    return build_dual_encoder(image_tower(dtype), text_tower(dtype), dtype=dtype, **kwargs)


class DualEncoderTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.RandomState(0)
        self.batch = 4
        self.images = rng.rand(self.batch, 16, 16, 3).astype("float32")
        self.text = {
            "token_ids": rng.randint(4, 20, (self.batch, 6)).astype("int32"),
            "padding_mask": np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 3 + [0] * 3, [1] * 6], bool),
        }
        self.input_data = {"images": self.images, **self.text}
        self.init_kwargs = {"projection_dim": 8}

    def test_builder_basics(self):
        # Head outputs stay float32 under mixed precision (checked below).
        model = self.run_model_builder_test(
            clip_builder, self.init_kwargs, self.input_data,
            {"image_embeddings": (4, 8), "text_embeddings": (4, 8), "logit_scale": (4,)},
            run_mixed_precision_check=False,
        )
        self.assertIsInstance(model, DualEncoder)
        outputs = model(self.input_data)
        norms = np.linalg.norm(outputs["image_embeddings"], axis=-1)
        self.assertAllClose(norms, np.ones(4), atol=1e-5)
        self.assertAllClose(outputs["logit_scale"], np.full(4, 1 / 0.07), atol=1e-3)

    def test_mixed_precision(self):
        model = clip_builder(dtype="mixed_bfloat16", **self.init_kwargs)
        for w in model.weights:
            self.assertEqual(w.dtype, "float32", msg=w.path)
        outputs = model(self.input_data)
        self.assertEqual(keras.backend.standardize_dtype(outputs["text_embeddings"].dtype), "float32")
        layer = model.get_layer("image_projection")
        self.assertEqual(layer.compute_dtype, "bfloat16")

    def test_encode_methods_match_the_graph(self):
        model = clip_builder(**self.init_kwargs)
        outputs = model(self.input_data)
        self.assertAllClose(model.encode_images(self.images, batch_size=3), outputs["image_embeddings"], atol=1e-5)
        self.assertAllClose(model.encode_text(self.text), outputs["text_embeddings"], atol=1e-5)
        logits = model.pair_logits(outputs["image_embeddings"], outputs["text_embeddings"])
        expected = np.asarray(outputs["image_embeddings"]) @ np.asarray(outputs["text_embeddings"]).T / 0.07
        self.assertAllClose(logits, expected, atol=1e-4)

    def test_encode_text_with_a_preprocessor(self):
        vocabulary = ["[PAD]", "[UNK]", "[START]", "[END]", "a", "red", "circle", "blue", "square"]
        text_encoder = build_text_encoder(
            vocabulary_size=9, sequence_length=6, num_layers=1, num_heads=2, hidden_dim=16,
            intermediate_dim=32,
        )
        bare = build_dual_encoder(image_tower(), text_encoder, projection_dim=8)
        with self.assertRaisesRegex(ValueError, "no tokenizer"):
            bare.encode_text(["a red circle"])
        model = DualEncoder.from_config(
            {**bare.get_config(), "preprocessor": DualEncoderPreprocessor(TextTokenizer(vocabulary))}
        )
        model.set_weights(bare.get_weights())
        texts = ["a red circle", "a blue square"]
        token_ids, padding_mask = model.preprocessor.tokenize_strings(texts)
        tokens = {"token_ids": token_ids, "padding_mask": padding_mask}
        self.assertAllClose(model.encode_text(texts), bare.encode_text(tokens), atol=1e-6)

    def test_saving(self):
        self.run_model_saving_test(clip_builder(**self.init_kwargs), self.input_data)

    def test_siglip_saving(self):
        siglip = clip_builder(projection_dim=8, use_bias=True, initial_bias=-10.0, initial_temperature=0.1)
        restored = self.run_model_saving_test(siglip, self.input_data)
        self.assertAllClose(restored(self.input_data)["logit_bias"], np.full(4, -10.0))

    def test_projection_choices(self):
        # Without biases (CLIP's projections).
        model = clip_builder(projection_dim=8, projection_use_bias=False)
        self.assertIsNone(model.image_projection.output_dense.bias)
        self.run_model_saving_test(model, self.input_data)
        # No projection: the towers' pooled outputs (both 16 wide) are the
        # embeddings, here with a momentum copy and a queue, saved and loaded.
        model = clip_builder(projection_dim=None, momentum=0.9, queue_size=8)
        self.assertEqual(model.projection_dim, 16)
        self.assertIsNone(model.get_config()["projection_dim"])
        pooled = model.text_encoder(self.text)["pooled_output"]
        self.assertAllClose(model.encode_text(self.text),
                            pooled / np.linalg.norm(pooled, axis=-1, keepdims=True), atol=1e-6)
        restored = self.run_model_saving_test(model, self.input_data)
        self.assertEqual(restored.projection_dim, 16)
        with self.assertRaisesRegex(ValueError, "image_encoder pooled size 16, text_encoder "
                                                "pooled size 8"):
            build_dual_encoder(image_tower(), build_text_encoder(
                vocabulary_size=20, sequence_length=6, num_layers=1, num_heads=2,
                hidden_dim=8, intermediate_dim=16), projection_dim=None)
        with self.assertRaisesRegex(ValueError, "projection_intermediate_dim=32"):
            clip_builder(projection_dim=None, projection_intermediate_dim=32)

    def test_two_views_are_refused_with_a_pointer_to_two_view_encoder(self):
        with self.assertRaisesRegex(
            ValueError, r"build_two_view_encoder\(encoder, projection_dim\).*Received: text_encoder=None"
        ):
            build_dual_encoder(image_tower(), None, projection_dim=8)
        encoder = image_tower()
        with self.assertRaisesRegex(
            ValueError,
            r"must be a text tower.*second_encoder=.*Received: text_encoder=an encoder "
            r"named 'vit_image_encoder' taking images \(None, 16, 16, 3\)",
        ):
            build_dual_encoder(encoder, encoder, projection_dim=8)
        other = build_vit_image_encoder(
            image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2,
            hidden_dim=16, intermediate_dim=32, name="other_image_encoder",
        )
        with self.assertRaisesRegex(ValueError, "named 'other_image_encoder' taking images"):
            build_dual_encoder(image_tower(), other, projection_dim=8)
        with self.assertRaisesRegex(ValueError, "named 'video_encoder' taking videos"):
            build_dual_encoder(image_tower(), video_tower(), projection_dim=8)

    def test_video_tower(self):
        model = build_dual_encoder(video_tower(), text_tower(), projection_dim=8)
        self.assertEqual(sorted(model.input), ["padding_mask", "token_ids", "videos"])
        videos = np.random.rand(self.batch, 4, 16, 16, 3).astype("float32")
        outputs = model({"videos": videos, **self.text})
        self.assertEqual(outputs["video_embeddings"].shape, (4, 8))
        self.assertAllClose(model.encode_images(videos), outputs["video_embeddings"], atol=1e-5)

    def test_frozen_image_tower_lit(self):
        model = clip_builder(projection_dim=8, freeze_image_encoder=True)
        encoder_ids = {id(w) for w in model.image_encoder.weights}
        self.assertFalse(encoder_ids & {id(w) for w in model.trainable_weights})
        before = [np.array(w) for w in model.image_encoder.weights]
        model.compile(
            optimizer=keras.optimizers.SGD(0.5), loss=CLIPLoss(), jit_compile=False
        )
        model.fit(tf.data.Dataset.from_tensors(self.input_data), epochs=1, verbose=0)
        for w, b in zip(model.image_encoder.weights, before):
            self.assertAllEqual(np.array(w), b)
        restored = self.run_model_saving_test(model, self.input_data)
        self.assertFalse(restored.image_encoder.trainable)

    def test_fit_on_inputs_only_with_siglip(self):
        # (CLIPLoss trains in the LiT and mirrored tests.)
        model = clip_builder(
            projection_dim=8, use_bias=True, initial_bias=-10.0, initial_temperature=0.1
        )
        model.compile(
            optimizer=keras.optimizers.Adam(1e-2), loss=SigLIPLoss(), jit_compile=False
        )
        ds = tf.data.Dataset.from_tensors(self.input_data).repeat()
        history = model.fit(ds, steps_per_epoch=5, epochs=2, verbose=0)
        self.assertLess(history.history["loss"][1], history.history["loss"][0])

    def one_step_weights(self, strategy=None, trainer=False):
        """Weights after one SGD step from the same start on the same global batch."""
        if not hasattr(self, "start"):
            self.start = [np.array(w) for w in clip_builder(**self.init_kwargs).weights]
        start = self.start
        global_batch = {k: np.concatenate([v, v[::-1]]) for k, v in self.input_data.items()}
        # model.fit under MirroredStrategy averages the first batch across
        # replicas (Keras 3.15), which has no bool kernel: int32 mask.
        global_batch["padding_mask"] = global_batch["padding_mask"].astype("int32")
        ds = tf.data.Dataset.from_tensors(global_batch)
        with (strategy or tf.distribute.get_strategy()).scope():
            model = clip_builder(**self.init_kwargs)
        model.set_weights(start)
        if trainer:
            with (strategy or tf.distribute.get_strategy()).scope():
                runner = Trainer(
                    model, loss=CLIPLoss(), optimizer=keras.optimizers.SGD(0.1),
                    strategy=strategy, jit_compile=False,
                )
            runner.fit(ds.repeat(), steps=1, verbose=0)
        else:
            with (strategy or tf.distribute.get_strategy()).scope():
                model.compile(optimizer=keras.optimizers.SGD(0.1), loss=CLIPLoss(), jit_compile=False)
            model.fit(ds, epochs=1, verbose=0)
        weights = [np.array(w) for w in model.weights]
        moved = sum(not np.allclose(a, b) for a, b in zip(weights, start))
        self.assertGreater(moved, len(start) // 2)
        return weights

    def test_fit_and_trainer_under_mirrored_strategy_equal_one_device(self):
        # Global negatives: one SGD step on two replicas (each embedding half
        # the global batch, the loss gathering the other half) moves every
        # weight exactly as one device on the whole batch.
        strategy = get_strategy("mirrored")
        self.assertEqual(strategy.num_replicas_in_sync, 2)
        one = self.one_step_weights()
        for trainer in (False, True):
            with self.subTest(trainer=trainer):
                two = self.one_step_weights(strategy, trainer=trainer)
                for a, b in zip(one, two):
                    self.assertAllClose(a, b, atol=1e-5, rtol=1e-5)

    def test_xla_under_mirrored_strategy_on_cpu_is_refused_clearly(self):
        strategy = get_strategy("mirrored")
        with strategy.scope():
            model = clip_builder(**self.init_kwargs)
            trainer = Trainer(
                model, loss=CLIPLoss(), optimizer=keras.optimizers.SGD(0.5),
                strategy=strategy, jit_compile=True,
            )
        ds = tf.data.Dataset.from_tensors(self.input_data).repeat()
        with self.assertRaisesRegex(RuntimeError, "jit_compile=False"):
            trainer.fit(ds, steps=1, verbose=0)

    def test_other_keras_losses_still_apply_per_output(self):
        model = clip_builder(**self.init_kwargs)
        model.compile(optimizer="sgd", loss={"image_embeddings": "mse"})
        targets = {"image_embeddings": np.zeros((4, 8), "float32")}
        history = model.fit(self.input_data, targets, batch_size=4, epochs=1, verbose=0)
        self.assertAllClose(history.history["loss"][0], 0.125, atol=1e-5)  # unit rows, dim 8

    def test_presets(self):
        names = presets.list_presets(family="dual_encoder")
        self.assertIn("dual_encoder_tiny", names)
        self.assertIn("dual_encoder_base", names)
        tiny = presets.build_from_preset("dual_encoder_tiny")
        self.assertLess(tiny.count_params(), 200_000)
        config = presets.get_preset_config("dual_encoder_base")
        self.assertEqual(config["image_encoder"], "vit_image_encoder_base")
        self.assertEqual(presets.get_preset_config(config["image_encoder"])["patch_size"], 16)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "Received: projection_dim=0"):
            clip_builder(projection_dim=0)
        with self.assertRaisesRegex(ValueError, "image or video tower"):
            build_dual_encoder(text_tower(), text_tower(), projection_dim=8)
        with self.assertRaisesRegex(ValueError, "Received: text_encoder='text'"):
            build_dual_encoder(image_tower(), "text", projection_dim=8)
        with self.assertRaisesRegex(ValueError, "different names"):
            build_dual_encoder(
                image_tower(), build_text_encoder(
                    vocabulary_size=20, sequence_length=6, num_layers=1, num_heads=2,
                    hidden_dim=16, intermediate_dim=32, name="vit_image_encoder",
                ), projection_dim=8,
            )
        inputs = keras.Input((16, 16, 3))
        sequence_only = keras.Model(inputs, {"sequence_output": keras.layers.Reshape((768,))(inputs)})
        with self.assertRaisesRegex(ValueError, "without `pooled_output`"):
            build_dual_encoder(sequence_only, text_tower(), projection_dim=8)
        model = clip_builder(**self.init_kwargs)
        with self.assertRaisesRegex(ValueError, "Received: images with shape \\(2, 8, 8, 3\\)"):
            model.encode_images(np.zeros((2, 8, 8, 3)))
