"""Exports and saved files replace only what mmzoo wrote: one test per case."""

import json
import os
import shutil
import stat
import tempfile

from mmzoo.data import TextTokenizer
from mmzoo.encoders import build_vit_image_encoder
from mmzoo.export import export_image_captioning_model
from mmzoo.models import ImageCaptioningPreprocessor
from mmzoo.models import build_image_captioning_model
from mmzoo.testing import TestCase
from mmzoo.training import save_model
from mmzoo.training import writes

VOCABULARY = ["[PAD]", "[UNK]", "[START]", "[END]"] + [f"w{i}" for i in range(8)]


def write(path, text="user data"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read()


class ExportSafetyTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        encoder = build_vit_image_encoder(
            image_shape=(16, 16, 3), patch_size=8, num_layers=1, num_heads=2,
            hidden_dim=16, intermediate_dim=32,
        )
        cls.model = build_image_captioning_model(
            encoder, vocabulary_size=12, sequence_length=6, num_layers=1,
            num_heads=2, hidden_dim=8, intermediate_dim=16,
            preprocessor=ImageCaptioningPreprocessor(TextTokenizer(VOCABULARY), (16, 16)),
        )
        # One export made once, copied where a test needs an earlier export.
        cls.directory = tempfile.mkdtemp()
        cls.earlier = os.path.join(cls.directory, "earlier")
        previous = os.umask(0o022)
        try:
            export_image_captioning_model(cls.model, cls.earlier)
        finally:
            os.umask(previous)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.directory, ignore_errors=True)
        super().tearDownClass()

    def copy_of_the_earlier_export(self):
        path = os.path.join(self.root, "out")
        shutil.copytree(self.earlier, path)
        return path

    def setUp(self):
        super().setUp()
        self.root = self.get_temp_dir()

    def export(self, path, **kwargs):
        return export_image_captioning_model(self.model, path, **kwargs)

    def make_run_directory(self, path):
        write(os.path.join(path, "checkpoint"), 'model_checkpoint_path: "ckpt-5"')
        write(os.path.join(path, "ckpt-5.index"))
        write(os.path.join(path, "model.keras"))

    # ------------------------------------------------------------- exports
    def test_directory_with_a_foreign_file_survives(self):
        path = os.path.join(self.root, "out")
        write(os.path.join(path, "notes.txt"))
        with self.assertRaisesRegex(ValueError, r"was not written by mmzoo \(it holds notes.txt\)"):
            self.export(path)
        self.assertEqual(read(os.path.join(path, "notes.txt")), "user data")
        self.assertEqual(os.listdir(path), ["notes.txt"])
        self.assertEqual([n for n in os.listdir(self.root) if n.startswith(".")], [])

    def test_run_directory_is_never_replaced(self):
        run = os.path.join(self.root, "run")
        self.make_run_directory(run)
        for overwrite in (False, True):
            with self.assertRaisesRegex(ValueError, "is a training run directory"):
                self.export(run, overwrite=overwrite)
        self.assertEqual(sorted(os.listdir(run)), ["checkpoint", "ckpt-5.index", "model.keras"])

    def test_directory_holding_a_run_is_never_replaced(self):
        parent = os.path.join(self.root, "runs")
        self.make_run_directory(os.path.join(parent, "captioner"))
        with self.assertRaisesRegex(ValueError, "contains a training run directory"):
            self.export(parent, overwrite=True)
        self.assertTrue(os.path.exists(os.path.join(parent, "captioner", "model.keras")))

    def test_working_directory_is_never_replaced(self):
        cwd = os.getcwd()
        write(os.path.join(self.root, "notes.txt"))
        os.chdir(self.root)
        try:
            with self.assertRaisesRegex(ValueError, "the working directory or one of its parents"):
                self.export(".", overwrite=True)
        finally:
            os.chdir(cwd)
        self.assertTrue(os.path.exists(os.path.join(self.root, "notes.txt")))

    def test_overwrite_replaces_a_foreign_directory(self):
        path = os.path.join(self.root, "out")
        write(os.path.join(path, "old.txt"))
        self.export(path, overwrite=True)
        self.assertIn("saved_model.pb", os.listdir(path))
        self.assertNotIn("old.txt", os.listdir(path))

    def test_an_earlier_export_is_replaced_and_marked(self):
        with open(os.path.join(self.earlier, writes.EXPORT_MARKER)) as f:
            marker = json.load(f)
        self.assertEqual(marker["family"], "image_captioning")
        self.assertEqual(marker["signatures"], ["caption"])
        path = self.copy_of_the_earlier_export()
        os.remove(os.path.join(path, "saved_model.pb"))
        self.export(path)  # its own: no overwrite needed
        self.assertTrue(os.path.exists(os.path.join(path, "saved_model.pb")))
        self.assertEqual(sorted(os.listdir(path)), sorted(os.listdir(self.earlier)))
        self.assertEqual([n for n in os.listdir(self.root) if n.startswith(".")], [])

    def test_an_export_with_a_file_added_is_no_longer_replaced(self):
        path = self.copy_of_the_earlier_export()
        write(os.path.join(path, "README.txt"))
        with self.assertRaisesRegex(ValueError, "README.txt"):
            self.export(path)
        self.assertTrue(os.path.exists(os.path.join(path, "README.txt")))

    def test_an_empty_directory_is_written(self):
        empty = os.path.join(self.root, "empty")
        os.makedirs(empty)
        self.export(empty)
        self.assertIn("saved_model.pb", os.listdir(empty))

    def test_a_file_at_the_path_is_refused(self):
        path = os.path.join(self.root, "model")
        write(path)
        with self.assertRaisesRegex(ValueError, "it is a file"):
            self.export(path)
        self.assertEqual(read(path), "user data")

    def test_refused_before_any_work(self):
        # The check runs before tracing: nothing is staged beside the path.
        path = os.path.join(self.root, "out")
        write(os.path.join(path, "notes.txt"))
        with self.assertRaises(ValueError):
            self.export(path)
        self.assertEqual(sorted(os.listdir(self.root)), ["out"])

    def test_bad_pixel_limit(self):
        for value in (0, -5, 1.5, True):
            with self.assertRaisesRegex(ValueError, "`max_image_pixels` must be a positive integer"):
                self.export(os.path.join(self.root, "x"), max_image_pixels=value)

    def test_export_respects_the_umask(self):
        # Staged in a private temporary directory (0700), renamed into place.
        self.assertEqual(stat.S_IMODE(os.stat(self.earlier).st_mode), 0o755)

    # --------------------------------------------------------- .keras files
    def test_keras_file_respects_the_umask_and_replaces_a_keras_file(self):
        path = os.path.join(self.root, "model.keras")
        previous = os.umask(0o022)
        try:
            save_model(self.model, path)
            save_model(self.model, path)  # a .keras archive is replaced
        finally:
            os.umask(previous)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o644)
        self.assertEqual(os.listdir(self.root), ["model.keras"])

    def test_keras_file_never_replaces_other_files(self):
        path = os.path.join(self.root, "model.keras")
        write(path, "not a keras archive")
        with self.assertRaisesRegex(ValueError, "exists and is not a `.keras` archive"):
            save_model(self.model, path)
        self.assertEqual(read(path), "not a keras archive")
        save_model(self.model, path, overwrite=True)
        self.assertNotEqual(open(path, "rb").read(2), b"no")
        directory = os.path.join(self.root, "dir.keras")
        os.makedirs(directory)
        with self.assertRaisesRegex(ValueError, "is a directory"):
            save_model(self.model, directory, overwrite=True)
