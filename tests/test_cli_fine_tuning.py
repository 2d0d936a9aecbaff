"""`mmzoo train --init-from RUN --lora-rank N`, `mmzoo export --quantize MODE` and
`mmzoo train dual_encoder --preset KERAS_HUB_PRESET [--freeze-image-encoder]`."""

import hashlib
import io
import json
import os
from unittest import mock

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from mmzoo import cli
from mmzoo.encoders import load_keras_hub_backbone
from mmzoo.models import DualEncoder
from mmzoo.testing import TestCase
from mmzoo.testing.keras_hub_presets import save_contrastive_preset
from mmzoo.testing.keras_hub_presets import save_image_preset
from mmzoo.testing.keras_hub_presets import save_text_preset
from mmzoo.testing.keras_hub_presets import save_video_preset
from test_cli_families import metric_steps


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class FineTuningTest(TestCase):
    def test_lora_run_from_a_trained_run_then_quantized_export(self):
        root = self.get_temp_dir()
        base_dir, tuned_dir = os.path.join(root, "base"), os.path.join(root, "tuned")
        common = ["--num-examples", "64", "--batch-size", "16", "--checkpoint-every", "2"]
        self.assertEqual(cli.main(["train", "dual_encoder", "--steps", "2", "--model-dir",
                                   base_dir, *common]), 0)
        base_file = os.path.join(base_dir, "model.keras")
        base_digest = digest(base_file)

        tune = ["train", "dual_encoder", "--model-dir", tuned_dir, "--init-from", base_dir,
                "--lora-rank", "2", *common]
        err = io.StringIO()
        with mock.patch("sys.stderr", err):
            self.assertEqual(cli.main([*tune, "--steps", "2"]), 0)
        self.assertRegex(err.getvalue(), r"LoRA rank 2 on \d+ layers: [\d,]+ of [\d,]+ parameters")
        self.assertEqual(cli.main([*tune, "--steps", "4"]), 0)  # resumed
        self.assertEqual(metric_steps(tuned_dir)[-1], 4)
        self.assertEqual(len(metric_steps(tuned_dir)), len(set(metric_steps(tuned_dir))))
        with open(os.path.join(tuned_dir, "run.json")) as f:
            run = json.load(f)
        self.assertEqual((run["init_from"], run["lora_rank"]), (os.path.abspath(base_dir), 2))
        self.assertEqual(digest(base_file), base_digest)  # the starting run is unchanged

        # The run's model.keras is the merged model; its adapters file, on the
        # base model, gives the same outputs.
        tuned = keras.saving.load_model(os.path.join(tuned_dir, "model.keras"), safe_mode=True)
        self.assertIsNone(tuned.lora_rank)
        base = keras.saving.load_model(base_file, safe_mode=True)
        base.load_lora_weights(os.path.join(tuned_dir, "adapters.lora.h5"))
        texts = ["a red circle", "a blue square on the left"]
        self.assertAllClose(base.encode_text(texts), tuned.encode_text(texts), atol=1e-5)
        self.assertNotAllClose(
            keras.saving.load_model(base_file).encode_text(texts), tuned.encode_text(texts)
        )

        output = os.path.join(root, "int8")
        self.assertEqual(cli.main(["export", "dual_encoder", "--model-dir", tuned_dir,
                                   "--output", output, "--quantize", "int8"]), 0)
        served = tf.saved_model.load(output).signatures["encode_text"](texts=tf.constant(texts))
        tuned.quantize("int8")
        self.assertAllClose(served["embeddings"], tuned.encode_text(texts), atol=1e-5)
        loaded = keras.saving.load_model(os.path.join(tuned_dir, "model.keras"))
        self.assertIsNone(loaded.weight_quantization)  # model.keras is not changed

        # Bad starts: nothing is written.
        for args, message in (
            (["--lora-rank", "2"], "LoRA adapts a trained model: pass --init-from"),
            (["--init-from", os.path.join(root, "missing")], "must be a run directory"),
        ):
            other = os.path.join(root, "other")
            with mock.patch("sys.stderr", io.StringIO()) as e:
                self.assertEqual(cli.main(["train", "dual_encoder", "--model-dir", other,
                                           "--steps", "2", *args]), 2)
            self.assertIn(message, e.getvalue())
            self.assertFalse(os.path.exists(other))
        for args, message in (
            (["--model-dir", base_dir, "--init-from", base_dir], "is the run directory itself"),
            (["--model-dir", tuned_dir, "--init-from", base_dir, "--lora-rank", "4"],
             "started with --init-from .* and --lora-rank 2"),
            (["--model-dir", tuned_dir], "started with --init-from"),
        ):
            with mock.patch("sys.stderr", io.StringIO()) as e:
                self.assertEqual(cli.main(["train", "dual_encoder", "--steps", "8", *args]), 2)
            self.assertRegex(e.getvalue(), message)
        self.assertEqual(digest(base_file), base_digest)
        self.assertEqual(metric_steps(tuned_dir)[-1], 4)
        np.testing.assert_array_equal(metric_steps(base_dir), [1, 2])


class KerasHubPresetRunTest(TestCase):
    def test_lit_run_from_a_keras_hub_preset(self):
        root = self.get_temp_dir()
        preset = save_contrastive_preset(
            os.path.join(root, "clip_preset"), "clip", texts=["a red circle", "a blue square"]
        )
        run_dir = os.path.join(root, "lit")
        train = ["train", "dual_encoder", "--preset", preset, "--model-dir", run_dir,
                 "--freeze-image-encoder", "--num-examples", "32", "--batch-size", "8",
                 "--checkpoint-every", "2"]
        self.assertEqual(cli.main([*train, "--steps", "2"]), 0)
        self.assertEqual(cli.main([*train, "--steps", "4"]), 0)  # resumed
        self.assertEqual(metric_steps(run_dir)[-1], 4)
        with open(os.path.join(run_dir, "run.json")) as f:
            self.assertEqual(json.load(f)["preset"], preset)
        self.assertFalse(os.path.exists(os.path.join(run_dir, "tokenizer")))  # the preset's

        # LiT: the image tower is the preset's, the text tower has moved.
        trained = keras.saving.load_model(os.path.join(run_dir, "model.keras"), safe_mode=True)
        start = DualEncoder.from_keras_hub(preset)
        for tower, moved in (("image_encoder", False), ("text_encoder", True)):
            before = [v.numpy() for v in getattr(start, tower).weights]
            after = [v.numpy() for v in getattr(trained, tower).weights]
            difference = max(np.abs(a - b).max() for a, b in zip(before, after))
            self.assertEqual(difference > 1e-6, moved, tower)
        with mock.patch("sys.stdout", io.StringIO()):
            self.assertEqual(cli.main(["evaluate", "dual_encoder", "--model-dir", run_dir,
                                       "--num-examples", "16"]), 0)
        with open(os.path.join(run_dir, "eval_test.json")) as f:
            self.assertIn("image_to_text/recall@1", json.load(f))

        for args, message in (
            (["--preset", "dual_encoder_tiny", "--freeze-image-encoder"],
             r"\['freeze_image_encoder'\] apply to keras-hub presets only"),
            (["--preset", preset, "--init-from", run_dir], "not both"),
            (["--preset", os.path.join(root, "nowhere")], "must be a keras-hub CLIP, SigLIP or MetaCLIP 2"),
        ):
            other = os.path.join(root, "other")
            with mock.patch("sys.stderr", io.StringIO()) as e:
                self.assertEqual(cli.main(["train", "dual_encoder", "--model-dir", other,
                                           "--steps", "2", *args]), 2)
            self.assertRegex(e.getvalue(), message)
            self.assertFalse(os.path.exists(other))


def backbone_of(model, cls):
    """The one layer of class `cls` in `model`, however Keras numbered its name."""
    (layer,) = [layer for layer in model._flatten_layers() if isinstance(layer, cls)]
    return layer


class KerasHubImageEncoderRunTest(TestCase):
    """`--image-encoder`: a keras-hub image preset under a new model of every image family."""

    def test_captioner_on_a_vit_preset(self):
        root = self.get_temp_dir()
        preset = save_image_preset(os.path.join(root, "vit"), "vit")
        run_dir = os.path.join(root, "captioner")
        self.assertEqual(cli.main([
            "train", "image_captioning", "--image-encoder", preset, "--model-dir", run_dir,
            "--steps", "2", "--num-examples", "32", "--batch-size", "8",
        ]), 0)
        with open(os.path.join(run_dir, "run.json")) as f:
            self.assertEqual(json.load(f)["image_encoder"], os.path.abspath(preset))
        # model.keras alone holds the ViT and the preset's normalisation.
        model = keras.saving.load_model(os.path.join(run_dir, "model.keras"), safe_mode=True)
        vit = backbone_of(model.image_encoder, keras_hub.models.ViTBackbone)
        pixels = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
        backbone, _ = load_keras_hub_backbone(preset)
        self.assertEqual(vit.count_params(), backbone.count_params())
        with mock.patch("sys.stdout", io.StringIO()):
            self.assertEqual(cli.main(["evaluate", "image_captioning", "--model-dir", run_dir,
                                       "--num-examples", "8"]), 0)
            self.assertEqual(cli.main(["export", "image_captioning", "--model-dir", run_dir]), 0)
        served = tf.saved_model.load(os.path.join(run_dir, "saved_model"))
        image = tf.io.encode_png(tf.cast(pixels[0] * 255, tf.uint8))
        caption = served.signatures["serving_default"](images=tf.reshape(image, [1]))
        self.assertEqual(
            [c.decode() for c in caption["captions"].numpy()],
            model.generate(tf.image.decode_png(image)[None].numpy().astype("float32") / 255.0),
        )

    def test_fusion_on_a_resnet_preset_and_lit_on_a_vit_preset(self):
        root = self.get_temp_dir()
        resnet = save_image_preset(os.path.join(root, "resnet"), "resnet")
        run_dir = os.path.join(root, "fusion")
        with mock.patch("sys.stderr", io.StringIO()) as err:
            self.assertEqual(cli.main([
                "train", "fusion_classifier", "--image-encoder", resnet, "--model-dir", run_dir,
                "--steps", "2", "--num-examples", "32", "--batch-size", "8",
            ]), 0)
        # ResNet max-pools: deterministic training runs it without XLA.
        self.assertIn("runs without XLA", err.getvalue())
        model = keras.saving.load_model(os.path.join(run_dir, "model.keras"), safe_mode=True)
        backbone_of(model, keras_hub.models.ResNetBackbone)

        vit = save_image_preset(os.path.join(root, "vit"), "vit")
        run_dir = os.path.join(root, "lit")
        self.assertEqual(cli.main([
            "train", "dual_encoder", "--image-encoder", vit, "--freeze-image-encoder",
            "--model-dir", run_dir, "--steps", "2", "--num-examples", "32", "--batch-size", "8",
        ]), 0)
        trained = keras.saving.load_model(os.path.join(run_dir, "model.keras"), safe_mode=True)
        self.assertTrue(trained.freeze_image_encoder)
        self.assertEqual(trained.image_encoder.trainable_weights, [])
        backbone, _ = load_keras_hub_backbone(vit)
        after = backbone_of(trained.image_encoder, keras_hub.models.ViTBackbone).get_weights()
        for a, b in zip(backbone.get_weights(), after):
            self.assertAllEqual(a, b)  # locked: the preset's weights

    def test_fusion_with_a_bert_preset(self):
        # (video QA takes --text-encoder in the VideoPrism test below; a
        # RoBERTa question tower is tested in tests/encoders.)
        root = self.get_temp_dir()
        texts = ["is the shape a circle", "is there a red square", "what color is the circle"]
        preset = save_text_preset(os.path.join(root, "bert"), "bert", texts=texts)
        run_dir = os.path.join(root, "fusion")
        self.assertEqual(cli.main([
            "train", "fusion_classifier", "--text-encoder", preset, "--model-dir", run_dir,
            "--steps", "2", "--num-examples", "32", "--batch-size", "8",
        ]), 0)
        with open(os.path.join(run_dir, "run.json")) as f:
            self.assertEqual(json.load(f)["text_encoder"], os.path.abspath(preset))
        # The preset's tokenizer, not one trained on the run's texts.
        self.assertFalse(os.path.exists(os.path.join(run_dir, "tokenizer")))
        model = keras.saving.load_model(os.path.join(run_dir, "model.keras"), safe_mode=True)
        tokenizer = model.preprocessor.tokenizer
        self.assertIsInstance(tokenizer, keras_hub.models.BertTokenizer)
        backbone, _ = load_keras_hub_backbone(preset)
        self.assertEqual(tokenizer.vocabulary_size(), backbone.vocabulary_size)
        backbone_of(model, keras_hub.models.BertBackbone)
        self.assertTrue(model.preprocessor.return_segment_ids)  # BERT's, zeros
        with mock.patch("sys.stdout", io.StringIO()):
            self.assertEqual(cli.main(["evaluate", "fusion_classifier", "--model-dir", run_dir,
                                       "--num-examples", "8"]), 0)

    def test_video_qa_on_video_prism_with_a_bert_question_tower(self):
        root = self.get_temp_dir()
        video = save_video_preset(os.path.join(root, "videoprism"), num_frames=8, image_size=32)
        question = save_text_preset(
            os.path.join(root, "bert"), "bert",
            texts=["is there a red circle", "which way does the square move"],
        )
        run_dir = os.path.join(root, "video_qa")
        self.assertEqual(cli.main([
            "train", "video_qa", "--video-encoder", video, "--text-encoder", question,
            "--model-dir", run_dir, "--steps", "2", "--num-examples", "32", "--batch-size", "8",
        ]), 0)
        model = keras.saving.load_model(os.path.join(run_dir, "model.keras"), safe_mode=True)
        # The preset's spatial and temporal encoders are the video tower's.
        self.assertEqual(
            [layer.name for layer in model.video_encoder.layers
             if type(layer).__name__ == "VideoPrismEncoder"],
            ["spatial_encoder", "temporal_encoder"],
        )
        self.assertIn("segment_ids", model.question_encoder.input)  # given zeros
        # The clips are read at the preset's frames and size.
        self.assertEqual(model.preprocessor.video_converter.num_frames, 8)
        self.assertEqual(tuple(model.preprocessor.video_converter.image_shape), (32, 32, 3))
        with mock.patch("sys.stdout", io.StringIO()):
            self.assertEqual(cli.main(["evaluate", "video_qa", "--model-dir", run_dir,
                                       "--num-examples", "8"]), 0)

    def test_bad_image_encoders(self):
        root = self.get_temp_dir()
        gemma = os.path.join(root, "gemma")
        keras_hub.models.GemmaBackbone(
            vocabulary_size=50, num_layers=1, num_query_heads=2, num_key_value_heads=1,
            hidden_dim=16, intermediate_dim=32, head_dim=8,
        ).save_to_preset(gemma)
        run = os.path.join(root, "run")
        for family, args, message in (
            ("image_captioning", ["--image-encoder", gemma], "must take images.*GemmaBackbone"),
            ("image_captioning", ["--image-encoder", root], "without `config.json`"),
            ("video_qa", ["--image-encoder", gemma],
             "--image-encoder` applies to image_captioning, dual_encoder, fusion_classifier"),
            ("dual_encoder", ["--image-encoder", gemma, "--init-from", root],
             "brings its own towers"),
            ("image_captioning", ["--text-encoder", gemma],
             "--text-encoder` applies to video_qa, dual_encoder, fusion_classifier"),
            ("fusion_classifier", ["--text-encoder", save_image_preset(
                os.path.join(root, "vit"), "vit")], "Tokenizer that is compatible with ViTBackbone"),
        ):
            with mock.patch("sys.stderr", io.StringIO()) as e:
                self.assertEqual(cli.main(["train", family, "--model-dir", run, "--steps", "2",
                                           *args]), 2)
            self.assertRegex(e.getvalue(), message)
            self.assertFalse(os.path.exists(run))
