"""`DualEncoder.from_keras_hub`: keras-hub CLIP and SigLIP presets as mmzoo dual encoders.

Each preset is small, has random weights and is saved by the test itself
(`mmzoo.testing.keras_hub_presets`) to a directory, which keras-hub then
loads exactly as it loads a downloaded preset.
"""

import os
import shutil
import tempfile

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

import mmzoo
from mmzoo.export import export_dual_encoder
from mmzoo.testing import TestCase
from mmzoo.testing.keras_hub_presets import save_contrastive_preset
from mmzoo.testing.keras_hub_presets import save_trained_preset
from mmzoo.training import Trainer

TEXTS = ["a red circle", "a blue square", "a green triangle", "a small red square"]
# Upper case, punctuation and runs of spaces: CLIP lower-cases, SigLIP also
# removes punctuation and collapses spaces.
PROMPTS = ["A red circle.", "a blue  square", "a green, triangle!", "a SMALL red square"]
PREPROCESSORS = {
    "clip": "CLIPPreprocessor", "siglip": "SigLIPPreprocessor",
    "metaclip2": "MetaCLIP2CausalLMPreprocessor",
}
KINDS = [(kind, kind) for kind in PREPROCESSORS]


def images(seed=0, n=4):
    return np.random.default_rng(seed).uniform(size=(n, 32, 32, 3)).astype("float32")


class KerasHubDualEncoderTest(TestCase, parameterized.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.presets = {
            kind: save_contrastive_preset(os.path.join(cls.root, kind), kind, texts=TEXTS)
            for kind in PREPROCESSORS
        }

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def keras_hub_logits(self, kind, pixels, texts):
        """keras-hub's own backbone and preprocessor on the same inputs."""
        backbone = keras_hub.models.Backbone.from_preset(self.presets[kind])
        preprocessor = getattr(keras_hub.models, PREPROCESSORS[kind]).from_preset(
            self.presets[kind]
        )
        inputs = preprocessor({"images": pixels * 255.0, "prompts": texts})
        if isinstance(inputs, tuple):  # MetaCLIP 2's gives (x, y, sample_weight)
            inputs = inputs[0]
        outputs = backbone({"images": inputs["images"], "token_ids": inputs["token_ids"]})
        return np.asarray(outputs["vision_logits"]), np.asarray(inputs["token_ids"])

    @parameterized.named_parameters(*KINDS)
    def test_logits_equal_keras_hub(self, kind):
        model = mmzoo.models.DualEncoder.from_keras_hub(self.presets[kind])
        pixels = images()
        expected, token_ids = self.keras_hub_logits(kind, pixels, PROMPTS)
        # The preset's tokenizer, length and text canonicalisation.
        ids, _ = model.preprocessor.tokenize_strings(PROMPTS, "texts")
        self.assertAllEqual(ids, token_ids)
        logits = model.pair_logits(model.encode_images(pixels), model.encode_text(PROMPTS))
        self.assertAllClose(logits, expected, atol=1e-5, rtol=0)
        # Not trivially equal: the pairs are told apart.
        self.assertGreater(np.ptp(expected), 1e-2)

    @parameterized.named_parameters(*KINDS)
    def test_from_a_backbone_and_its_preprocessor(self, kind):
        backbone = keras_hub.models.Backbone.from_preset(self.presets[kind])
        preprocessor = getattr(keras_hub.models, PREPROCESSORS[kind]).from_preset(
            self.presets[kind]
        )
        model = mmzoo.models.DualEncoder.from_keras_hub(backbone, preprocessor=preprocessor)
        expected, _ = self.keras_hub_logits(kind, images(), TEXTS)
        logits = model.pair_logits(model.encode_images(images()), model.encode_text(TEXTS))
        self.assertAllClose(logits, expected, atol=1e-5, rtol=0)
        # The towers hold the backbone's layers: its weights, not copies.
        self.assertIs(model.image_encoder.get_layer(backbone.vision_encoder.name),
                      backbone.vision_encoder)

    @parameterized.named_parameters(*KINDS)
    def test_trained_weights_saved_back_as_a_preset(self, kind):
        backbone = keras_hub.models.Backbone.from_preset(self.presets[kind])
        preprocessor = getattr(keras_hub.models, PREPROCESSORS[kind]).from_preset(
            self.presets[kind]
        )
        model = mmzoo.models.DualEncoder.from_keras_hub(backbone, preprocessor=preprocessor)
        rng = np.random.default_rng(1)
        for variable in model.trainable_variables:  # a stand-in for training
            variable.assign(variable + rng.normal(0.0, 0.02, variable.shape))
        path = save_trained_preset(
            model, backbone, preprocessor, os.path.join(self.get_temp_dir(), kind)
        )
        reloaded = mmzoo.models.DualEncoder.from_keras_hub(path)
        for name in ("encode_text", "encode_images"):
            inputs = TEXTS if name == "encode_text" else images()
            self.assertAllClose(getattr(reloaded, name)(inputs), getattr(model, name)(inputs),
                                atol=1e-5)
        self.assertAllClose(reloaded.head.log_logit_scale, model.head.log_logit_scale)
        with self.assertRaisesRegex(ValueError, "made by `DualEncoder.from_keras_hub"):
            save_trained_preset(reloaded, backbone, preprocessor, self.get_temp_dir())

    def test_a_backbone_without_preprocessor_takes_token_ids(self):
        backbone = keras_hub.models.Backbone.from_preset(self.presets["clip"])
        model = mmzoo.models.DualEncoder.from_keras_hub(backbone)
        self.assertIsNone(model.preprocessor)
        with self.assertRaisesRegex(ValueError, "no tokenizer"):
            model.encode_text(TEXTS)
        token_ids = np.zeros((2, 16), "int32")  # the preset's length
        token_ids[:, :3] = [538, 320, 539]
        embeddings = model.encode_text({"token_ids": token_ids, "padding_mask": token_ids > 0})
        self.assertEqual(embeddings.shape, (2, 24))

    @parameterized.named_parameters(("clip_lit", "clip", True), ("siglip_full", "siglip", False))
    def test_fine_tunes_with_mmzoo_losses(self, kind, lit):
        model = mmzoo.models.DualEncoder.from_keras_hub(
            self.presets[kind], freeze_image_encoder=lit
        )
        loss = mmzoo.losses.CLIPLoss() if kind == "clip" else mmzoo.losses.SigLIPLoss()
        image_before = [v.numpy() for v in model.image_encoder.weights]
        text_before = [v.numpy() for v in model.text_encoder.weights]
        token_ids, padding_mask = model.preprocessor.tokenize_strings(TEXTS, "texts")
        data = {"images": images(), "token_ids": token_ids, "padding_mask": padding_mask}
        # XLA for one of the two (compiling costs more than these steps).
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, jit_compile=lit)
        history = model.fit(
            tf.data.Dataset.from_tensor_slices(data).batch(4).repeat(), steps_per_epoch=3,
            verbose=0,
        )
        losses = history.history["loss"]
        self.assertTrue(np.isfinite(losses).all())
        image_moved = max(
            np.abs(v.numpy() - b).max() for v, b in zip(model.image_encoder.weights, image_before)
        )
        text_moved = max(
            np.abs(v.numpy() - b).max() for v, b in zip(model.text_encoder.weights, text_before)
        )
        self.assertGreater(text_moved, 1e-4)
        if lit:
            self.assertEqual(image_moved, 0.0)
        else:
            self.assertGreater(image_moved, 1e-4)

    def test_trains_under_mirrored_strategy_with_the_trainer(self):
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            model = mmzoo.models.DualEncoder.from_keras_hub(
                self.presets["siglip"], freeze_image_encoder=True
            )
            optimizer = keras.optimizers.SGD(0.1)
        token_ids, padding_mask = model.preprocessor.tokenize_strings(TEXTS, "texts")
        data = {"images": images(), "token_ids": token_ids,
                "padding_mask": padding_mask.astype("int32")}
        bias = model.head.logit_bias.numpy()
        trainer = Trainer(
            model, mmzoo.losses.SigLIPLoss(), optimizer, strategy=strategy, jit_compile=False
        )
        trainer.fit(tf.data.Dataset.from_tensor_slices(data).batch(4, drop_remainder=True).repeat(), steps=2,
                    verbose=0)
        self.assertEqual(trainer.step, 2)
        self.assertNotEqual(model.head.logit_bias.numpy(), bias)

    @parameterized.named_parameters(*KINDS)
    def test_save_and_load_keep_the_preset_s_preprocessing(self, kind):
        model = mmzoo.models.DualEncoder.from_keras_hub(self.presets[kind])
        expected = model.encode_text(PROMPTS)
        path = os.path.join(self.get_temp_dir(), f"{kind}.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        self.assertAllClose(loaded.encode_text(PROMPTS), expected, atol=1e-6)
        self.assertAllClose(loaded.encode_images(images()), model.encode_images(images()),
                            atol=1e-6)
        self.assertEqual(loaded.head.max_logit_scale, model.head.max_logit_scale)

    @parameterized.named_parameters(("siglip", "siglip"), ("metaclip2", "metaclip2"))
    def test_export_canonicalizes_texts_in_the_graph(self, kind):
        # SigLIP's canonicalisation (lower case, no punctuation) and MetaCLIP
        # 2's lower-casing and tokenizer run inside the SavedModel, in a
        # process without mmzoo; CLIP's tokenizer is exported in
        # tests/data/test_keras_hub_tokenizers.py.
        model = mmzoo.models.DualEncoder.from_keras_hub(self.presets[kind])
        expected = model.encode_text(PROMPTS)
        if kind == "siglip":  # their canonical forms
            self.assertAllClose(model.encode_text(TEXTS), expected)
        self.run_export_test(
            input_data={"texts": np.array(PROMPTS, dtype=object)},
            export_fn=lambda p: export_dual_encoder(model, p),
            endpoint="encode_text",
            expected_output={"embeddings": expected},
        )

    def test_lora_adapts_the_keras_hub_towers(self):
        model = mmzoo.models.DualEncoder.from_keras_hub(self.presets["clip"])
        report = model.enable_lora(4, parts=["text_encoder"])
        self.assertGreater(report["layers"], 0)
        adapted = {layer.name for layer in model.lora_layers()}
        self.assertTrue(adapted)
        before = model.encode_text(TEXTS)
        # LoRA starts as the identity: the pretrained embeddings are kept.
        self.assertAllClose(model.merge_lora().encode_text(TEXTS), before, atol=1e-5)


class KerasHubDualEncoderBadInputTest(TestCase):
    def test_not_a_preset_directory(self):
        empty = self.get_temp_dir()
        with self.assertRaisesRegex(ValueError, "without `config.json`.*" + empty):
            mmzoo.models.DualEncoder.from_keras_hub(empty)

    def test_a_preset_of_another_class(self):
        path = os.path.join(self.get_temp_dir(), "bert")
        keras_hub.models.BertBackbone(
            vocabulary_size=10, num_layers=1, num_heads=1, hidden_dim=4, intermediate_dim=8,
            max_sequence_length=8,
        ).save_to_preset(path)
        with self.assertRaisesRegex(ValueError, "class BertBackbone"):
            mmzoo.models.DualEncoder.from_keras_hub(path)

    def test_an_unknown_name_lists_the_known_ones(self):
        with self.assertRaisesRegex(ValueError, "clip_vit_base_patch16.*clip_vit_bsae"):
            mmzoo.models.DualEncoder.from_keras_hub("clip_vit_bsae")

    def test_preprocessor_arguments(self):
        path = save_contrastive_preset(os.path.join(self.get_temp_dir(), "clip"), "clip")
        clip = keras_hub.models.Backbone.from_preset(path)
        with self.assertRaisesRegex(ValueError, "only with a backbone"):
            mmzoo.models.DualEncoder.from_keras_hub(
                path, preprocessor=keras_hub.models.CLIPPreprocessor.from_preset(path)
            )
        siglip_path = save_contrastive_preset(
            os.path.join(self.get_temp_dir(), "siglip"), "siglip"
        )
        with self.assertRaisesRegex(ValueError, "CLIPPreprocessor.*SigLIPPreprocessor"):
            mmzoo.models.DualEncoder.from_keras_hub(
                clip, preprocessor=keras_hub.models.SigLIPPreprocessor.from_preset(siglip_path)
            )
        bigger = save_contrastive_preset(
            os.path.join(self.get_temp_dir(), "bigger"), "clip",
            texts=["a red circle", "a blue square", "zebras jump over foxes"],
        )
        with self.assertRaisesRegex(ValueError, r"the tokenizer has \d+ tokens, the model "
                                                r"vocabulary_size=\d+"):
            mmzoo.models.DualEncoder.from_keras_hub(
                clip, preprocessor=keras_hub.models.CLIPPreprocessor.from_preset(bigger)
            )
        siglip = keras_hub.models.Backbone.from_preset(siglip_path)
        preprocessor = keras_hub.models.SigLIPPreprocessor.from_preset(siglip_path)
        preprocessor.canonicalize_text = False
        with self.assertRaisesRegex(ValueError, "canonicalize_text=False"):
            mmzoo.models.DualEncoder.from_keras_hub(siglip, preprocessor=preprocessor)
        with self.assertRaisesRegex(ValueError, "BertBackbone"):
            mmzoo.models.DualEncoder.from_keras_hub(keras_hub.models.BertBackbone(
                vocabulary_size=10, num_layers=1, num_heads=1, hidden_dim=4,
                intermediate_dim=8, max_sequence_length=8,
            ))

    def test_tower_sizes_that_do_not_fit(self):
        path = save_contrastive_preset(os.path.join(self.get_temp_dir(), "siglip"), "siglip")
        siglip = keras_hub.models.Backbone.from_preset(path)
        with self.assertRaisesRegex(ValueError, r"its length \(16\).*sequence_length=8"):
            mmzoo.encoders.build_keras_hub_text_tower(siglip, 8)
        converter = keras_hub.layers.SigLIPImageConverter(image_size=(64, 64))
        with self.assertRaisesRegex(ValueError, r"\(64, 64\).*\(32, 32, 3\)"):
            mmzoo.encoders.build_keras_hub_image_tower(siglip, converter)
