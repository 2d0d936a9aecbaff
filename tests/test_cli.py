import io
import json
import os
import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from mmzoo import cli
from mmzoo import recipes
from mmzoo.testing import TestCase


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "mmzoo.cli", *args], capture_output=True, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=600,
    )


class CLIArgumentsTest(TestCase):
    def test_presets_command(self):
        out = io.StringIO()
        cli._list_presets("image_captioning", out=out)
        self.assertIn("image_captioning_tiny", out.getvalue())
        out = io.StringIO()
        cli._list_presets("dual_encoder", keras_hub=True, out=out)
        self.assertRegex(out.getvalue(), r"dual_encoder_tiny .*\n(.*\n)*clip_vit_base_patch16 +"
                         r"dual_encoder +keras-hub CLIPBackbone")
        self.assertRegex(out.getvalue(), r"siglip_base_patch16_224 +dual_encoder +keras-hub "
                         r"SigLIPBackbone")
        self.assertRegex(out.getvalue(), r"vit_base_patch16_224_imagenet +image tower +"
                         r"keras-hub ViTBackbone \(--image-encoder NAME: "
                         r"image_captioning, dual_encoder, fusion_classifier;")
        out = io.StringIO()
        cli._list_presets("image_captioning", keras_hub=True, out=out)
        self.assertNotIn("CLIPBackbone (--preset", out.getvalue())
        for class_name in ("DINOV2Backbone", "ResNetBackbone", "EfficientNetBackbone"):
            self.assertRegex(out.getvalue(), rf"image tower +keras-hub {class_name} ")
        out = io.StringIO()
        cli._list_presets("video_qa", keras_hub=True, out=out)
        self.assertNotIn("image tower", out.getvalue())
        self.assertNotIn("CLIPBackbone", out.getvalue())
        self.assertRegex(out.getvalue(), r"videoprism_public_v1_base +video tower +keras-hub "
                         r"VideoPrismBackbone \(--video-encoder NAME: video_qa;")
        for class_name in ("BertBackbone", "DistilBertBackbone", "RobertaBackbone"):
            self.assertRegex(out.getvalue(), rf"text tower +keras-hub {class_name} \(--text-encoder "
                             r"NAME: video_qa, dual_encoder, fusion_classifier;")
        out = io.StringIO()
        cli._list_presets("image_captioning", keras_hub=True, out=out)
        self.assertNotIn("text tower", out.getvalue())

    def test_bad_family_is_a_clear_error(self):
        proc = run_cli("presets", "--family", "nope")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("Received: family='nope'", proc.stderr)

    def test_bad_flag_values_list_the_choices(self):
        proc = run_cli("train", "image_captioning", "--strategy", "gpu_cluster")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("invalid choice: 'gpu_cluster'", proc.stderr)
        self.assertIn("'multi_worker'", proc.stderr)
        proc = run_cli("train", "captioning")
        self.assertEqual(proc.returncode, 2)
        self.assertIn(
            "invalid choice: 'captioning' (choose from 'image_captioning', 'video_qa', "
            "'dual_encoder', 'fusion_classifier')", proc.stderr,
        )
        proc = run_cli("export", "fusion_classifier", "--model-dir", "x")
        self.assertEqual(proc.returncode, 2)
        self.assertIn("invalid choice: 'fusion_classifier'", proc.stderr)
        with self.assertRaises(SystemExit) as e:
            cli.main(["train", "image_captioning", "--steps", "0"])
        self.assertEqual(e.exception.code, 2)

    def test_config_file_values_and_flag_precedence(self):
        path = os.path.join(self.get_temp_dir(), "run.yaml")
        with open(path, "w") as f:
            f.write("steps: 77\nbatch_size: 16\ndata: synthetic\nstrategy: mirrored\n")
        train = mock.Mock(return_value=[{"step": 5, "loss": 1.25}])
        with mock.patch.dict(recipes.TRAIN, {"image_captioning": train}):
            self.assertEqual(cli.main(["train", "image_captioning", "--config", path, "--steps", "5"]), 0)
        kwargs = train.call_args.kwargs
        self.assertEqual(kwargs["steps"], 5)  # the flag wins
        self.assertEqual(kwargs["batch_size"], 16)  # from the file
        self.assertEqual(kwargs["strategy"], "mirrored")
        # Family defaults fill what neither gives.
        self.assertEqual(kwargs["preset"], "image_captioning_tiny")
        self.assertEqual(kwargs["model_dir"], os.path.join("runs", "image_captioning"))
        self.assertEqual(kwargs["learning_rate"], 2e-3)

    def test_config_file_errors(self):
        path = os.path.join(self.get_temp_dir(), "run.json")
        with open(path, "w") as f:
            json.dump({"stepz": 3}, f)
        with self.assertRaises(SystemExit), mock.patch("sys.stderr", new_callable=io.StringIO) as err:
            cli.main(["train", "image_captioning", "--config", path])
        self.assertIn("unknown option 'stepz'", err.getvalue())
        self.assertIn("'steps'", err.getvalue())
        with open(path, "w") as f:
            json.dump({"strategy": "nope"}, f)
        with self.assertRaises(SystemExit), mock.patch("sys.stderr", new_callable=io.StringIO) as err:
            cli.main(["train", "image_captioning", "--config", path])
        self.assertIn("strategy must be one of", err.getvalue())

    def test_missing_run_is_a_clear_error(self):
        proc = run_cli("export", "image_captioning", "--model-dir", self.get_temp_dir())
        self.assertEqual(proc.returncode, 2)
        self.assertIn("run `mmzoo train` first", proc.stderr)

    def test_bad_data_spec(self):
        with self.assertRaisesRegex(ValueError, "Received: --data 'nowhere.txt'"):
            recipes.load_caption_examples("nowhere.txt", "train", (32, 32, 3))

    def test_caption_grid(self):
        images = np.random.RandomState(0).rand(3, 8, 8, 3).astype("float32")
        path = cli.write_caption_grid(
            os.path.join(self.get_temp_dir(), "grid.png"), images, ["a red circle", "", "x"]
        )
        grid = np.asarray(Image.open(path))
        self.assertEqual(grid.shape[2], 3)
        self.assertEqual(grid.shape[0], 8 * 4 + 64)


# The `mmzoo` command, its work replaced by lines that TensorFlow prints
# (the names of the lines' sources are TensorFlow's) and one of mmzoo's.
_NOISY_COMMAND = """
import os
import sys

sys.argv = ["mmzoo", "train"] + sys.argv[1:]  # as the console script starts
from mmzoo import cli


def noisy_main(argv):
    import tensorflow as tf

    # Two lambdas on one line: AutoGraph cannot tell which to convert.
    first, second = (lambda x: x + 1), (lambda x: x * 2)
    tf.data.Dataset.range(2).map(first)
    tf.get_logger().warning("a TensorFlow warning")
    os.write(2, b"E0000 00:00:1 node_def_util.cc:682] NodeDef mentions attribute "
                b"use_unbounded_threadpool which is not in the op definition: Op<...>\\n")
    os.write(2, b"I0000 00:00:1 cudart_stub.cc:31] Could not find cuda drivers on your "
                b"machine, GPU will not be used.\\n")
    print("mmzoo.data: skipping x.png: file not found", file=sys.stderr)
    return 0


cli._main = noisy_main
sys.exit(cli.main())
"""
_HIDDEN = ("AutoGraph could not transform", "NodeDef mentions attribute", "cuda drivers")
_SHOWN = ("a TensorFlow warning", "skipping x.png: file not found")


class CLIQuietTest(TestCase):
    def run_command(self, *args):
        # A file, not `-c`: AutoGraph reads the lambdas' source.
        script = os.path.join(self.get_temp_dir(), "noisy_command.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(_NOISY_COMMAND))
        proc = subprocess.run(
            [sys.executable, script, *args],
            capture_output=True, text=True, timeout=300,
            env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
        )
        self.assertEqual(proc.returncode, 0, msg=proc.stderr[-3000:])
        return proc.stderr

    def test_tensorflow_lines_that_concern_no_user_are_hidden(self):
        stderr = self.run_command()
        for line in _HIDDEN:
            self.assertNotIn(line, stderr)
        for line in _SHOWN:
            self.assertIn(line, stderr)

    def test_verbose_shows_everything(self):
        stderr = self.run_command("--verbose")
        for line in _HIDDEN + _SHOWN:
            self.assertIn(line, stderr)


@pytest.mark.slow
class CLIEndToEndTest(TestCase):
    def test_demo_then_evaluate_and_export_its_run(self):
        out = io.StringIO()
        output_dir = os.path.join(self.get_temp_dir(), "demo")
        result = cli.run_demo(output_dir, steps=10, num_test=8, out=out)
        self.assertTrue(os.path.exists(os.path.join(output_dir, "captions.png")))
        self.assertTrue(os.path.exists(os.path.join(output_dir, "saved_model", "saved_model.pb")))
        self.assertTrue(os.path.exists(os.path.join(output_dir, "run", "model.keras")))
        self.assertEqual(set(result["metrics"]) >= {"bleu_4", "cider_d"}, True)
        self.assertLen(result["captions"], 8)
        self.assertIn("bleu_4", out.getvalue())
        with open(os.path.join(output_dir, "run", "eval_test.json")) as f:
            self.assertEqual(json.load(f)["num_examples"], 8)
        # The demo's run is an ordinary `mmzoo train` run directory: the
        # evaluate and export commands take it (test_cli_families.py runs
        # the other families' train, evaluate and export; its dual_encoder
        # run resumes).
        run_dir = os.path.join(output_dir, "run")
        with mock.patch("sys.stdout", io.StringIO()) as printed:
            self.assertEqual(cli.main(["evaluate", "image_captioning", "--model-dir", run_dir,
                                       "--num-examples", "12"]), 0)
        self.assertEqual(json.loads(printed.getvalue())["num_examples"], 12)
        self.assertEqual(cli.main(["export", "image_captioning", "--model-dir", run_dir]), 0)
        self.assertTrue(os.path.exists(os.path.join(run_dir, "saved_model", "saved_model.pb")))
