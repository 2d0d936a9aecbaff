import io
import os
import subprocess
import sys

from mmzoo import cli
from mmzoo.testing import TestCase


class CLITest(TestCase):
    def test_demo_runs_every_tiny_encoder(self):
        out = io.StringIO()
        rows = cli.run_demo(batch_size=2, repeats=1, out=out)
        self.assertEqual(
            [r["preset"] for r in rows],
            ["cnn_image_encoder_tiny", "frame_video_encoder_tiny", "text_encoder_tiny",
             "video_encoder_tiny", "vit_image_encoder_tiny"],
        )
        for r in rows:
            self.assertEqual(r["pooled_output"][0], 2)
            self.assertIn(r["preset"], out.getvalue())

    def test_presets_command(self):
        out = io.StringIO()
        cli._list_presets("encoders", out=out)
        self.assertIn("vit_image_encoder_base", out.getvalue())

    def test_bad_family_is_a_clear_error(self):
        proc = subprocess.run(
            [sys.executable, "-m", "mmzoo.cli", "presets", "--family", "nope"],
            capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        )
        self.assertEqual(proc.returncode, 2)
        self.assertIn("Available: ['encoders']. Received: family='nope'", proc.stderr)

    def test_bad_flag_value(self):
        with self.assertRaises(SystemExit) as e:
            cli.main(["demo", "--batch-size", "0"])
        self.assertEqual(e.exception.code, 2)
