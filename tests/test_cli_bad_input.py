"""The `mmzoo` command on bad input: one line on stderr and exit code 2, one test per case."""

import io
import json
import os
import re
import subprocess
import sys
import textwrap
from unittest import mock

import keras
import numpy as np
import pytest
from PIL import Image

from mmzoo import cli
from mmzoo import recipes
from mmzoo import training
from mmzoo.data import TextTokenizer
from mmzoo.models import ImageCaptioningPreprocessor
from mmzoo.presets import build_from_preset
from mmzoo.testing import TestCase

VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]"] + [f"w{i}" for i in range(8)]


def run_main(*argv):
    """`(exit code, stdout, stderr)` of `mmzoo ARGV` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch("sys.stdout", out), mock.patch("sys.stderr", err):
        try:
            code = cli.main(list(argv))
        except SystemExit as e:  # argparse's usage errors
            code = e.code
    return code, out.getvalue(), err.getvalue()


def write_file(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(content, bytes) else "w") as f:
        f.write(content)
    return path


class CLIBadInputTest(TestCase):
    def setUp(self):
        super().setUp()
        self.root = self.get_temp_dir()

    def assertOneLineError(self, code, err, pattern, command="train"):
        self.assertEqual(code, 2, msg=err)
        self.assertNotIn("Traceback", err)
        self.assertRegex(err, pattern)
        lines = [l for l in err.splitlines() if l.startswith(f"mmzoo {command}: error:")]
        self.assertLen(lines, 1, msg=err)

    def config(self, name, content):
        return write_file(os.path.join(self.root, name), content)

    def train_with_config(self, name, content):
        return run_main("train", "image_captioning", "--config", self.config(name, content))

    def make_run(self, family="image_captioning"):
        """A run directory with an (untrained) tiny model, as `mmzoo train` leaves it."""
        run = os.path.join(self.root, "run")
        tokenizer = TextTokenizer(VOCABULARY)
        model = build_from_preset(
            "image_captioning_tiny", vocabulary_size=len(VOCABULARY),
            preprocessor=ImageCaptioningPreprocessor(tokenizer, image_converter=(32, 32)),
        )
        training.save_model(model, os.path.join(run, "model.keras"))
        tokenizer.save(os.path.join(run, "tokenizer"))
        write_file(os.path.join(run, "run.json"),
                   json.dumps({"family": family, "preset": "image_captioning_tiny"}))
        return run

    # -------------------------------------------------------- config files
    def test_config_null_where_a_path_belongs(self):
        code, _, err = self.train_with_config("run.yaml", "data: null\n")
        self.assertEqual(code, 2)
        self.assertIn("--config: data (--data) must be a string. Received: null", err)

    def test_config_list_where_a_path_belongs(self):
        code, _, err = self.train_with_config("run.json", '{"model_dir": ["a", "b"]}')
        self.assertEqual(code, 2)
        self.assertIn("model_dir (--model-dir) must be a string. Received: a list ['a', 'b']", err)

    def test_config_wrong_type_for_a_number(self):
        code, _, err = self.train_with_config("run.yaml", "steps: [1, 2]\n")
        self.assertEqual(code, 2)
        self.assertIn("steps (--steps) must be a number. Received: a list [1, 2]", err)

    def test_config_bad_json(self):
        code, _, err = self.train_with_config("run.json", '{"steps": 3,,}')
        self.assertEqual(code, 2)
        self.assertRegex(err, r"is not valid JSON \(Expecting property name .* at line 1, column 13\)")
        self.assertNotIn("Traceback", err)

    def test_config_bad_yaml(self):
        code, _, err = self.train_with_config("run.yaml", "steps: [1, 2\n")
        self.assertEqual(code, 2)
        self.assertRegex(err, r"is not valid YAML \(.* at line 2, column 1\)")

    def test_config_yaml_in_a_txt_file(self):
        code, _, err = self.train_with_config("run.txt", "steps: 3\n")
        self.assertEqual(code, 2)
        self.assertIn("--config must be a .json, .yaml or .yml file", err)

    def test_config_not_utf8(self):
        code, _, err = self.train_with_config("run.yaml", b"steps: 3\ndata: caf\xe9\n")
        self.assertEqual(code, 2)
        self.assertIn("is not UTF-8 text (invalid continuation byte at byte 18)", err)

    def test_config_with_a_byte_order_mark_is_read(self):
        path = self.config("run.json", "\ufeff" + json.dumps({"steps": 7, "deterministic": False}))
        train = mock.Mock(return_value=[{"step": 7, "loss": 0.5}])
        with mock.patch.dict(recipes.TRAIN, {"image_captioning": train}):
            code, out, _ = run_main("train", "image_captioning", "--config", path)
        self.assertEqual(code, 0)
        self.assertEqual(train.call_args.kwargs["steps"], 7)
        self.assertIs(train.call_args.kwargs["deterministic"], False)

    def test_config_bool_option_needs_a_bool(self):
        code, _, err = self.train_with_config("run.yaml", "deterministic: 'yes'\n")
        self.assertEqual(code, 2)
        self.assertIn("deterministic must be true or false. Received: 'yes'", err)

    def test_config_not_a_mapping(self):
        code, _, err = self.train_with_config("run.yaml", "- steps\n- 3\n")
        self.assertEqual(code, 2)
        self.assertIn("expected a mapping of option names to values", err)

    # ---------------------------------------------------------------- data
    def test_data_path_that_does_not_exist_and_no_run_left_behind(self):
        model_dir = os.path.join(self.root, "new_run")
        code, _, err = run_main("train", "image_captioning", "--data", "data/missing.jsonl",
                                "--model-dir", model_dir, "--steps", "1")
        self.assertOneLineError(code, err, r"`--data`: no such file\. Received: --data "
                                r"'data/missing.jsonl'")
        self.assertFalse(os.path.exists(model_dir))  # the failed start removed what it made

    def test_data_directory(self):
        code, _, err = run_main("train", "image_captioning", "--data", self.root,
                                "--model-dir", os.path.join(self.root, "r"), "--steps", "1")
        self.assertOneLineError(code, err, r"`--data` is a directory; pass the manifest file")

    def test_manifest_whose_images_all_fail(self):
        for i in range(3):
            write_file(os.path.join(self.root, f"bad{i}.png"), b"\x89PNG\r\n\x1a\n broken")
        manifest = write_file(
            os.path.join(self.root, "train.jsonl"),
            "".join(json.dumps({"image_path": f"bad{i}.png", "caption": "a red circle"}) + "\n"
                    for i in range(3)),
        )
        model_dir = os.path.join(self.root, "run")
        code, _, err = run_main("train", "image_captioning", "--data", manifest,
                                "--model-dir", model_dir, "--steps", "1")
        self.assertEqual(code, 2, msg=err)
        self.assertNotIn("Traceback", err)
        self.assertIn("train.jsonl: 3 records, 0 skipped", err)  # counts, printed first
        self.assertIn("No usable examples in", err)
        self.assertIn("3 skipped", err)
        self.assertFalse(os.path.exists(model_dir))

    def test_strict_stops_at_the_bad_file_and_names_it(self):
        write_file(os.path.join(self.root, "bad.png"), b"\x89PNG\r\n\x1a\n broken")
        manifest = write_file(os.path.join(self.root, "train.csv"),
                              "image_path,caption\nbad.png,a red circle\n")
        code, _, err = run_main("train", "image_captioning", "--data", manifest, "--strict",
                                "--model-dir", os.path.join(self.root, "run"), "--steps", "1")
        self.assertOneLineError(code, err, r"bad\.png")

    # ---------------------------------------------------------------- runs
    def test_evaluate_and_export_a_run_of_another_family(self):
        run = os.path.join(self.root, "run")
        write_file(os.path.join(run, "run.json"), json.dumps({"family": "video_qa"}))
        code, _, err = run_main("evaluate", "image_captioning", "--model-dir", run)
        self.assertOneLineError(
            code, err, r"holds a video_qa run, not image_captioning: use `mmzoo <command> "
            r"video_qa", command="evaluate",
        )
        code, _, err = run_main("export", "dual_encoder", "--model-dir", run)
        self.assertOneLineError(code, err, "holds a video_qa run, not dual_encoder",
                                command="export")

    def test_a_run_made_before_run_json_is_recognised_by_its_model(self):
        run = self.make_run()
        os.remove(os.path.join(run, "run.json"))
        code, _, err = run_main("export", "dual_encoder", "--model-dir", run)
        self.assertOneLineError(code, err, "holds a image_captioning run, not dual_encoder",
                                command="export")

    def test_train_into_a_run_of_another_family(self):
        run = os.path.join(self.root, "run")
        write_file(os.path.join(run, "run.json"), json.dumps({"family": "dual_encoder"}))
        code, _, err = run_main("train", "image_captioning", "--model-dir", run, "--steps", "1")
        self.assertOneLineError(code, err, "holds a dual_encoder run, not image_captioning")
        self.assertTrue(os.path.exists(os.path.join(run, "run.json")))

    def test_missing_run_directory(self):
        code, _, err = run_main("evaluate", "video_qa", "--model-dir",
                                os.path.join(self.root, "nope"))
        self.assertOneLineError(code, err, "No such run directory", command="evaluate")

    def test_export_into_the_run_directory_is_refused_and_the_run_survives(self):
        run = self.make_run()
        before = sorted(os.listdir(run))
        code, _, err = run_main("export", "image_captioning", "--model-dir", run, "--output",
                                run, "--overwrite")
        self.assertOneLineError(code, err, "is a training run directory", command="export")
        self.assertEqual(sorted(os.listdir(run)), before)

    def test_export_into_a_foreign_directory_needs_overwrite(self):
        run = self.make_run()
        out = os.path.join(self.root, "out")
        write_file(os.path.join(out, "notes.txt"), "keep me")
        code, _, err = run_main("export", "image_captioning", "--model-dir", run, "--output", out)
        self.assertOneLineError(code, err, r"pass overwrite=True \(`--overwrite`\)",
                                command="export")
        self.assertTrue(os.path.exists(os.path.join(out, "notes.txt")))
        code, stdout, err = run_main("export", "image_captioning", "--model-dir", run,
                                     "--output", out, "--overwrite", "--max-image-pixels", "1000")
        self.assertEqual(code, 0, msg=err)
        self.assertIn(f"Wrote a SavedModel to {out}", stdout)
        self.assertIn("Signatures: `caption`: encoded image bytes -> captions.", stdout)
        self.assertFalse(os.path.exists(os.path.join(out, "notes.txt")))

    def test_demo_refuses_a_directory_it_did_not_write(self):
        write_file(os.path.join(self.root, "mine.txt"), "x")
        code, _, err = run_main("demo", "--output-dir", self.root, "--steps", "1")
        self.assertOneLineError(code, err, "holds files the demo did not write", command="demo")

    # ------------------------------------------------------ reporting, help
    def test_train_ends_with_a_summary(self):
        train = mock.Mock(return_value=[{"step": 50, "loss": 0.25}])
        with mock.patch.dict(recipes.TRAIN, {"dual_encoder": train}):
            code, out, _ = run_main("train", "dual_encoder", "--steps", "50",
                                    "--model-dir", "runs/clip")
        self.assertEqual(code, 0)
        self.assertIn("Trained dual_encoder to step 50 of 50", out)
        self.assertIn("loss 0.2500", out)
        self.assertIn("Run directory: runs/clip", out)
        self.assertIn("Next: mmzoo evaluate dual_encoder --model-dir runs/clip", out)
        self.assertIn("mmzoo export dual_encoder --model-dir runs/clip", out)
        train.return_value = []
        with mock.patch.dict(recipes.TRAIN, {"dual_encoder": train}):
            _, out, _ = run_main("train", "dual_encoder", "--steps", "50")
        self.assertIn("nothing to train", out)

    def test_fold_answer_case_is_for_video_qa(self):
        code, _, err = run_main("train", "image_captioning", "--fold-answer-case")
        self.assertOneLineError(code, err, "`--fold-answer-case` applies to video_qa only")
        train = mock.Mock(return_value=[{"step": 1, "loss": 1.0}])
        with mock.patch.dict(recipes.TRAIN, {"video_qa": train}):
            code, _, _ = run_main("train", "video_qa", "--fold-answer-case", "--steps", "1")
        self.assertEqual(code, 0)
        self.assertIs(train.call_args.kwargs["fold_answer_case"], True)

    def test_verbose_shows_the_traceback(self):
        with self.assertRaisesRegex(ValueError, "no such file"):
            cli.main(["train", "image_captioning", "--data", "x/missing.csv", "--verbose",
                      "--model-dir", os.path.join(self.root, "r")])

    def test_cli_strategies_are_the_trainers(self):
        self.assertEqual(cli.STRATEGIES, training.STRATEGIES)

    def test_help_and_presets_import_no_tensorflow(self):
        script = textwrap.dedent(
            """
            import sys
            sys.argv[0] = "mmzoo"  # as the console script starts
            from mmzoo import cli
            for argv in (["presets"], ["presets", "--family", "video_qa"]):
                assert cli.main(argv) == 0
            try:
                cli.main(["--help"])
            except SystemExit:
                pass
            print("tensorflow imported:", "tensorflow" in sys.modules, "keras" in sys.modules)
            """
        )
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=120)
        self.assertEqual(proc.returncode, 0, msg=proc.stderr)
        self.assertIn("video_qa_tiny", proc.stdout)
        self.assertIn("usage: mmzoo", proc.stdout)
        self.assertIn("tensorflow imported: False False", proc.stdout)


def run_the_command(*argv):
    """`mmzoo ARGV` in a child process, as on a first run: TensorFlow's log
    level and Python's warning filters are the defaults."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS")}
    return subprocess.run([sys.executable, "-m", "mmzoo.cli", *argv], capture_output=True,
                          text=True, timeout=900, env=env)


def unexpected_lines(stderr, expected):
    """The lines of `stderr` that match none of the regular expressions `expected`."""
    return [line for line in stderr.splitlines()
            if line.strip() and not any(re.match(pattern, line) for pattern in expected)]


@pytest.mark.slow
class CLITrainingReportTest(TestCase):
    def test_manifest_counts_are_reported_and_tensorflow_stays_quiet(self):
        # TensorFlow's "PyFunc is stateful" warning used to come at every
        # checkpoint of a run whose manifest had a skipped record; it goes to
        # file descriptor 2, hence a child process.
        root = self.get_temp_dir()
        rng = np.random.RandomState(0)
        rows = []
        for i in range(8):
            Image.fromarray(rng.randint(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                os.path.join(root, f"{i}.png"))
            rows.append({"image_path": f"{i}.png", "caption": "a red circle"})
        rows.append({"image_path": "missing.png", "caption": "a blue square"})
        manifest = write_file(os.path.join(root, "train.jsonl"),
                              "".join(json.dumps(r) + "\n" for r in rows))
        # Run twice with the same seed: reproducible runs (the default of
        # `mmzoo train`) give bit-identical weights, files, skipped record
        # and dropout included.
        runs = []
        for name in ("run", "same_seed_run"):
            runs.append(run_the_command(
                "train", "image_captioning", "--data", manifest, "--steps", "4", "--batch-size",
                "4", "--checkpoint-every", "2", "--model-dir", os.path.join(root, name),
                "--seed", "3",
            ))
            self.assertEqual(runs[-1].returncode, 0, msg=runs[-1].stderr[-3000:])
        proc = runs[0]
        weights = [
            [v.numpy() for v in keras.saving.load_model(os.path.join(root, name, "model.keras")).weights]
            for name in ("run", "same_seed_run")
        ]
        self.assertEqual(len(weights[0]), len(weights[1]))
        for first, second in zip(*weights):
            np.testing.assert_array_equal(first, second)
        self.assertNotIn("PyFunc is stateful", proc.stderr)
        # TensorFlow's C++ start-up lines (CUDA probe, oneDNN) are not shown,
        # nor any warning: stderr holds the manifest's report, nothing else.
        for noise in ("absl::InitializeLog", "oneDNN", "cuda drivers", "cuInit"):
            self.assertNotIn(noise, proc.stderr)
        self.assertEqual(proc.stderr.count("train.jsonl: 9 records, 1 skipped"), 2)  # start, end
        self.assertIn("file not found", proc.stderr)
        self.assertEqual(unexpected_lines(proc.stderr, (
            r"mmzoo\.data: skipping .*missing\.png: file not found$",
            r".*train\.jsonl: 9 records, 1 skipped, 0 videos padded$",
            r"  skipped .*missing\.png: file not found$",
        )), [])
        self.assertIn("Trained image_captioning to step 4 of 4", proc.stdout)
