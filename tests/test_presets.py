import numpy as np
import pytest

from mmzoo import presets
from mmzoo.testing import TestCase

TINY_INPUTS = {
    "vit_image_encoder_tiny": lambda: np.random.rand(2, 32, 32, 3).astype("float32"),
    "cnn_image_encoder_tiny": lambda: np.random.rand(2, 32, 32, 3).astype("float32"),
    "conv_image_encoder_tiny": lambda: np.random.rand(2, 64, 64, 3).astype("float32"),
    "text_encoder_tiny": lambda: {
        "token_ids": np.random.randint(0, 512, (2, 16)).astype("int32"),
        "padding_mask": np.ones((2, 16), bool),
    },
    "video_encoder_tiny": lambda: np.random.rand(2, 8, 32, 32, 3).astype("float32"),
    "frame_video_encoder_tiny": lambda: np.random.rand(2, 8, 32, 32, 3).astype("float32"),
    "conv_frame_video_encoder_tiny": lambda: np.random.rand(2, 8, 32, 32, 3).astype("float32"),
}


class PresetsTest(TestCase):
    def test_every_encoder_has_a_tiny_preset(self):
        names = presets.list_presets(family="encoders")
        self.assertEqual(sorted(n for n in names if n.endswith("_tiny")), sorted(TINY_INPUTS))

    def test_tiny_presets_build_and_run(self):
        for name, make_inputs in TINY_INPUTS.items():
            model = presets.build_from_preset(name)
            out = model(make_inputs())
            self.assertEqual(out["pooled_output"].shape[0], 2, msg=name)
            self.assertLess(model.count_params(), 500_000, msg=name)

    def test_overrides(self):
        model = presets.build_from_preset("vit_image_encoder_tiny", num_layers=1, name="small_vit")
        self.assertEqual(model.name, "small_vit")
        self.assertLen([l for l in model.layers if "transformer_block" in l.name], 1)

    def test_config_is_a_copy(self):
        config = presets.get_preset_config("text_encoder_tiny")
        config["num_layers"] = 99
        self.assertEqual(presets.get_preset_config("text_encoder_tiny")["num_layers"], 2)

    def test_unknown_preset_suggests_names(self):
        with self.assertRaisesRegex(ValueError, r"Did you mean \['vit_image_encoder_tiny'.*Received: preset='vit_image_encoder_tinny'"):
            presets.build_from_preset("vit_image_encoder_tinny")

    def test_unknown_override(self):
        with self.assertRaisesRegex(
            ValueError, r"no argument\(s\) \['num_layerz'\]\. Did you mean 'num_layers' for "
            r"'num_layerz'\? Valid arguments"
        ):
            presets.build_from_preset("vit_image_encoder_tiny", num_layerz=1)

    def test_unknown_override_of_a_builder_with_kwargs(self):
        # The captioning builder passes **kwargs to ImageCaptioningModel; a
        # misspelled argument was swallowed by keras.Model before.
        with self.assertRaisesRegex(ValueError, r"'vocabulary_size' for 'vocab_size'"):
            presets.build_from_preset("image_captioning_tiny", vocab_size=100)
        with self.assertRaisesRegex(ValueError, r"'projection_dim' for 'projection_dimm'"):
            presets.build_from_preset("dual_encoder_tiny", projection_dimm=16)
        # Nested tower overrides are checked against the tower's preset.
        with self.assertRaisesRegex(ValueError, r"Preset 'text_encoder_tiny' has no argument"):
            presets.build_from_preset("dual_encoder_tiny", text_encoder={"vocab_size": 300})
        # Keras model arguments pass.
        model = presets.build_from_preset("image_captioning_tiny", name="named_captioner")
        self.assertEqual(model.name, "named_captioner")

    def test_listing_imports_no_model_code(self):
        # Builders are named by path, so listing presets needs no TensorFlow.
        record = presets.get_preset("image_captioning_tiny")
        self.assertIsInstance(record.builder, str)
        self.assertEqual(record.builder.split(":")[1], "build_image_captioning_model")

    def test_nested_encoder_spec(self):
        # A preset may give a tower as {"preset": name, **overrides}.
        config = presets.get_preset_config("dual_encoder_tiny")
        self.assertEqual(presets.encoder_spec(config["text_encoder"]),
                         ("text_encoder_tiny", {"sequence_length": 32}))
        self.assertEqual(presets.encoder_config(config["text_encoder"])["sequence_length"], 32)
        self.assertEqual(presets.encoder_config("text_encoder_tiny")["sequence_length"], 16)
        self.assertIsNone(presets.encoder_spec(None))
        self.assertIsNone(presets.encoder_config("not a preset"))
        model = presets.build_from_preset("dual_encoder_tiny")
        self.assertEqual(model.text_encoder.input["token_ids"].shape[1], 32)
        with self.assertRaisesRegex(ValueError, "Received: preset='text_encoder_tinny'"):
            presets.encoder_spec({"preset": "text_encoder_tinny"})

    def test_nested_overrides(self):
        # A dict without "preset" overrides arguments of the nested preset,
        # keeping the preset's own overrides of it.
        model = presets.build_from_preset(
            "dual_encoder_tiny", text_encoder={"vocabulary_size": 300}, dtype="bfloat16"
        )
        text = model.text_encoder
        self.assertEqual(text.input["token_ids"].shape[1], 32)
        embedding = [w for w in text.weights if w.shape[0] == 300]
        self.assertNotEmpty(embedding)
        # The dtype reaches the tower.
        self.assertEqual(text.get_layer("transformer_block_0").dtype_policy.name, "bfloat16")
        # Another preset by spec, and a built model, replace the tower.
        model = presets.build_from_preset(
            "dual_encoder_tiny", text_encoder={"preset": "text_encoder_tiny", "num_layers": 1}
        )
        self.assertEqual(model.text_encoder.input["token_ids"].shape[1], 16)
        with self.assertRaisesRegex(ValueError, "does not build its `second_encoder` from a preset"):
            presets.build_from_preset("dual_encoder_simclr_tiny", second_encoder={"num_layers": 1})
        # The two-view preset's tower takes nested overrides, and it has no text tower.
        simclr = presets.build_from_preset("dual_encoder_simclr_tiny", encoder={"num_layers": 1})
        self.assertEqual(type(simclr).__name__, "TwoViewEncoder")
        self.assertLen(
            [layer for layer in simclr.encoder.layers if layer.name.startswith("transformer_block")], 1
        )
        with self.assertRaisesRegex(ValueError, r"has no argument\(s\) \['text_encoder'\]"):
            presets.build_from_preset("dual_encoder_simclr_tiny", text_encoder="text_encoder_tiny")

    def test_unknown_family(self):
        with self.assertRaisesRegex(ValueError, "Received: family='nope'"):
            presets.list_presets(family="nope")


@pytest.mark.slow
class LargePresetsTest(TestCase):
    def test_published_sizes(self):
        # Parameter counts of the published architectures (no class token, no
        # classifier): ViT-S/16 ~ 21.7M, ViT-B/16 ~ 85.8M.
        expected = {"vit_image_encoder_small": 21.7e6, "vit_image_encoder_base": 85.8e6}
        for name, count in expected.items():
            model = presets.build_from_preset(name)
            self.assertAllClose(model.count_params(), count, rtol=0.01, msg=name)
