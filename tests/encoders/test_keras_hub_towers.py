"""keras-hub CLIP / SigLIP towers as mmzoo encoders: a CLIP vision tower under a captioner."""

import os

import keras
import keras_hub
import numpy as np

import mmzoo
from mmzoo.testing import TestCase
from mmzoo.testing.keras_hub_presets import save_contrastive_preset

VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]", "a", "red", "circle"]


class KerasHubTowersTest(TestCase):
    def test_clip_vision_tower_under_a_captioner(self):
        preset = save_contrastive_preset(os.path.join(self.get_temp_dir(), "clip"), "clip")
        backbone = keras_hub.models.Backbone.from_preset(preset)
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
        tower = mmzoo.encoders.build_keras_hub_image_tower(backbone, converter)
        pixels = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
        outputs = tower(pixels)
        # The class token and the 16 patch tokens, after CLIP's last layer norm.
        self.assertEqual(tuple(outputs["sequence_output"].shape), (2, 17, 32))
        self.assertAllClose(outputs["pooled_output"], outputs["sequence_output"][:, 0])
        # The preset's normalisation is in the graph: the tower on [0, 1]
        # images equals the encoder on the converter's output.
        expected = backbone.vision_encoder({"images": converter(pixels * 255.0)})
        self.assertAllClose(outputs["sequence_output"], expected, atol=1e-5)

        model = mmzoo.models.build_image_captioning_model(
            tower, vocabulary_size=len(VOCABULARY), sequence_length=8, num_layers=1,
            num_heads=2, hidden_dim=16, intermediate_dim=32,
            preprocessor=mmzoo.models.ImageCaptioningPreprocessor(
                mmzoo.data.TextTokenizer(VOCABULARY), image_converter=(32, 32)
            ),
        )
        captions = model.generate(pixels)
        path = os.path.join(self.get_temp_dir(), "captioner.keras")
        model.save(path)
        self.assertEqual(keras.saving.load_model(path, safe_mode=True).generate(pixels), captions)

    def test_siglip_towers_pool_with_their_own_heads(self):
        preset = save_contrastive_preset(os.path.join(self.get_temp_dir(), "siglip"), "siglip")
        backbone = keras_hub.models.Backbone.from_preset(preset)
        image_tower = mmzoo.encoders.build_keras_hub_image_tower(backbone)
        text_tower = mmzoo.encoders.build_keras_hub_text_tower(backbone, 16)
        self.assertEqual(sorted(image_tower.output), ["pooled_output"])
        self.assertEqual(sorted(text_tower.output), ["pooled_output"])
        token_ids = np.ones((2, 16), "int32")
        self.assertAllClose(
            text_tower({"token_ids": token_ids, "padding_mask": token_ids > 0})["pooled_output"],
            backbone.text_encoder({"token_ids": token_ids}),
        )

    def test_bad_backbones(self):
        with self.assertRaisesRegex(ValueError, "CLIPBackbone.*Received: backbone of type str"):
            mmzoo.encoders.build_keras_hub_image_tower("clip_vit_base_patch16")
        with self.assertRaisesRegex(ValueError, "sequence_length"):
            mmzoo.encoders.build_keras_hub_text_tower(
                keras_hub.models.Backbone.from_preset(
                    save_contrastive_preset(os.path.join(self.get_temp_dir(), "c"), "clip")
                ), 17,
            )
