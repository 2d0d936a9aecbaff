"""`mmzoo train|evaluate|export` for video_qa, dual_encoder and fusion_classifier."""

import inspect
import io
import json
import os
from unittest import mock

import pytest
import tensorflow as tf

from mmzoo import cli
from mmzoo import recipes
from mmzoo.testing import TestCase
from test_cli_bad_input import run_the_command
from test_cli_bad_input import unexpected_lines


def metric_steps(model_dir):
    with open(os.path.join(model_dir, "metrics.jsonl")) as f:
        return [json.loads(line)["step"] for line in f]


class FamilyArgumentsTest(TestCase):
    def test_preset_of_another_family(self):
        for family, preset in [
            ("video_qa", "dual_encoder_tiny"),
            ("dual_encoder", "fusion_classifier_tiny"),
            ("fusion_classifier", "video_qa_tiny"),
        ]:
            with self.assertRaisesRegex(ValueError, f"Received: --preset '{preset}'"):
                recipes.TRAIN[family](preset=preset, model_dir=self.get_temp_dir())

    def test_unsupported_data(self):
        with self.assertRaisesRegex(ValueError, "Received: --data 'synthetic:shapes_captions'"):
            recipes.train_video_qa(data_spec="synthetic:shapes_captions",
                                   model_dir=self.get_temp_dir())
        with self.assertRaisesRegex(ValueError, "Received: --data 'tfds:coco_captions'"):
            recipes.train_fusion_classifier(data_spec="tfds:coco_captions",
                                            model_dir=self.get_temp_dir())
        with self.assertRaisesRegex(ValueError, "Received: --data 'nowhere.csv'"):
            recipes.train_video_qa(data_spec="nowhere.csv", model_dir=self.get_temp_dir())

    def test_two_view_dual_encoder_is_refused(self):
        with self.assertRaisesRegex(ValueError, "Received: --preset 'dual_encoder_simclr_tiny'"):
            recipes.train_dual_encoder(preset="dual_encoder_simclr_tiny",
                                       model_dir=self.get_temp_dir())

    def test_family_defaults(self):
        for family in ("video_qa", "dual_encoder", "fusion_classifier"):
            train = mock.Mock(return_value=[{"step": 3, "loss": 0.5}])
            with mock.patch.dict(recipes.TRAIN, {family: train}):
                self.assertEqual(cli.main(["train", family, "--steps", "3"]), 0)
            kwargs = train.call_args.kwargs
            self.assertEqual(kwargs["preset"], f"{family}_tiny")
            self.assertEqual(kwargs["model_dir"], os.path.join("runs", family))
            self.assertEqual(kwargs["batch_size"], 32 if family == "video_qa" else 64)
            self.assertEqual(
                kwargs["learning_rate"], 3e-4 if family == "fusion_classifier" else 1e-3
            )
            self.assertEqual(kwargs["steps"], 3)

    def test_evaluate_and_export_defaults_are_the_recipes(self):
        for family in recipes.FAMILIES:
            for command, table in (("evaluate", recipes.EVALUATE), ("export", recipes.EXPORT)):
                if family not in table:
                    continue
                function = mock.Mock(return_value={} if command == "evaluate" else "out")
                with mock.patch.dict(table, {family: function}), mock.patch("sys.stdout"):
                    self.assertEqual(cli.main([command, family, "--model-dir", "run"]), 0)
                expected = {"model_dir": "run", **recipes.RECIPES[family].defaults(command)}
                self.assertEqual(function.call_args.kwargs, expected)
        self.assertEqual(recipes.RECIPES["dual_encoder"].defaults("evaluate")["num_examples"], 1000)

    def test_option_of_another_family_is_a_clear_error(self):
        out, err = io.StringIO(), io.StringIO()
        with mock.patch("sys.stdout", out), mock.patch("sys.stderr", err):
            code = cli.main(["evaluate", "video_qa", "--model-dir", "run", "--method", "beam"])
        self.assertEqual(code, 2)
        self.assertIn("`--method` applies to image_captioning only. Received: family "
                      "'video_qa'", err.getvalue())

    def test_wrappers_take_the_recipe_options(self):
        signature = inspect.signature(recipes.train_video_qa)
        self.assertEqual(signature.parameters["batch_size"].default, 32)
        self.assertEqual(signature.parameters["fold_answer_case"].default, False)
        self.assertEqual(
            recipes.RECIPES["video_qa"].bind("train", (), {"steps": 5})["steps"], 5
        )
        with self.assertRaisesRegex(TypeError, "train_video_qa.*'stepz'"):
            recipes.train_video_qa(stepz=5)
        with self.assertRaisesRegex(TypeError, "evaluate_image_captioning"):
            recipes.evaluate_image_captioning("run", "synthetic", "test", 8, "greedy")

    def test_family_presets_listed(self):
        for family in ("video_qa", "dual_encoder", "fusion_classifier"):
            out = io.StringIO()
            cli._list_presets(family, out=out)
            self.assertIn(f"{family}_tiny", out.getvalue())


@pytest.mark.slow
class FamilyRunTest(TestCase):
    """Train (and resume), evaluate and export each family from the command line."""

    def run_family(self, family, extra=(), export=True, resume=False, child_process=False):
        model_dir = os.path.join(self.get_temp_dir(), family)
        common = ["--model-dir", model_dir, "--num-examples", "128", "--batch-size", "16",
                  "--checkpoint-every", "3", *extra]
        if child_process:
            # As on a first run (TensorFlow's log level and Python's warning
            # filters at their defaults): nothing but the summary is printed.
            # video_qa's pipeline looks answers up in a table, for which
            # TensorFlow logs an error line of its own under op determinism.
            proc = run_the_command("train", family, "--steps", "3", *common)
            self.assertEqual(proc.returncode, 0, msg=proc.stderr[-3000:])
            self.assertEqual(unexpected_lines(proc.stderr, ()), [])
            self.assertIn(f"Trained {family} to step 3 of 3", proc.stdout)
        else:
            self.assertEqual(cli.main(["train", family, "--steps", "3", *common]), 0)
        if resume:
            # The Trainer's resume is the same for every family (and
            # tests/training checks it in depth); this is the CLI's.
            self.assertEqual(cli.main(["train", family, "--steps", "6", *common]), 0)
        steps = metric_steps(model_dir)
        self.assertEqual(steps[-1], 6 if resume else 3)
        self.assertEqual(len(steps), len(set(steps)))  # resumed, not restarted
        out = io.StringIO()
        with mock.patch("sys.stdout", out):
            self.assertEqual(cli.main(["evaluate", family, "--model-dir", model_dir,
                                       "--num-examples", "24"]), 0)
        scores = json.loads(out.getvalue())
        with open(os.path.join(model_dir, "eval_test.json")) as f:
            self.assertEqual(json.load(f), scores)
        if export:
            self.assertEqual(cli.main(["export", family, "--model-dir", model_dir]), 0)
            saved = tf.saved_model.load(os.path.join(model_dir, "saved_model"))
            return scores, saved
        return scores, None

    def test_video_qa(self):
        scores, saved = self.run_family("video_qa", child_process=True)
        self.assertEqual(scores["count"], 24)
        self.assertBetween(scores["vqa_accuracy"], 0.0, 1.0)
        self.assertTrue(scores["by_question_type"])
        self.assertIn("answer", saved.signatures)

    def test_dual_encoder(self):
        scores, saved = self.run_family("dual_encoder", resume=True)
        self.assertEqual(scores["num_images"], 24)
        self.assertEqual(scores["num_texts"], 24 * 5)
        for direction in ("image_to_text", "text_to_image"):
            self.assertBetween(scores[f"{direction}/recall@1"], 0.0, 1.0)
            self.assertLessEqual(scores[f"{direction}/recall@1"], scores[f"{direction}/recall@5"])
        self.assertIn("encode_images", saved.signatures)
        self.assertIn("encode_text", saved.signatures)

    def test_dual_encoder_mirrored(self):
        # Global negatives need the all-gather, which runs outside XLA.
        model_dir = os.path.join(self.get_temp_dir(), "mirrored")
        self.assertEqual(cli.main([
            "train", "dual_encoder", "--steps", "2", "--model-dir", model_dir,
            "--num-examples", "64", "--batch-size", "8", "--strategy", "mirrored",
        ]), 0)
        self.assertEqual(metric_steps(model_dir)[-1], 2)

    def test_fusion_classifier(self):
        scores, _ = self.run_family("fusion_classifier", export=False)
        self.assertEqual(scores["macro avg"]["support"], 24)
        self.assertBetween(scores["accuracy"], 0.0, 1.0)
