"""`mmzoo.data.pack_records` / `load_tfrecords` and `mmzoo data pack`: TFRecord shards."""

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import PIL.Image
import tensorflow as tf

from mmzoo import cli
from mmzoo.data import load_image_caption_files
from mmzoo.data import load_tfrecords
from mmzoo.data import load_video_qa_files
from mmzoo.data import pack_records
from mmzoo.data import records
from mmzoo.recipes import _common
from mmzoo.recipes import video_qa
from mmzoo.testing import TestCase

IMAGE_SHAPE = (16, 16)


def write_manifest(root, num_images=9, bad=True):
    """A manifest of PNG, JPEG, BMP and grayscale images (one listed twice),
    plus a missing and a corrupt file when `bad`."""
    rng = np.random.RandomState(0)
    rows = []
    for i in range(num_images):
        fmt = ("PNG", "JPEG", "BMP", "PNG")[i % 4]
        shape = (18 + i, 24, 3) if i % 4 != 3 else (18 + i, 24)  # the last: grayscale
        name = f"image{i}.{fmt.lower()}"
        PIL.Image.fromarray(rng.randint(0, 256, shape, dtype=np.uint8)).save(
            os.path.join(root, name), format=fmt)
        rows.append({"image_path": name, "caption": f"caption {i}"})
    rows.append({"image_path": "image0.png", "caption": "another caption of image 0"})
    if bad:
        rows.append({"image_path": "missing.png", "caption": "gone"})
        with open(os.path.join(root, "corrupt.jpg"), "wb") as f:
            f.write(b"\xff\xd8\xff" + b"not a jpeg" * 8)
        rows.append({"image_path": "corrupt.jpg", "caption": "broken"})
    path = os.path.join(root, "captions.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    return path


def by_captions(dataset):
    return {tuple(c.decode() for c in x["captions"].numpy()): x["images"].numpy()
            for x in dataset}


def shard_bytes(directory):
    schema = records.read_schema(directory)
    out = []
    for shard in schema["shards"]:
        with open(os.path.join(directory, shard["file"]), "rb") as f:
            out.append(f.read())
    return out


class PackAndReadTest(TestCase):
    def test_packed_examples_equal_the_manifest_loaders(self):
        root = self.get_temp_dir()
        manifest = write_manifest(root)
        output = os.path.join(root, "records")
        with self.assertLogs("mmzoo.data", "WARNING"):
            report = pack_records(manifest, output, num_shards=3, verbose=False)
        self.assertEqual(report.num_records, 12)
        self.assertEqual(sorted(report.skipped), [os.path.join(root, "corrupt.jpg"),
                                                  os.path.join(root, "missing.png")])
        self.assertIn("cannot decode image", report.skipped[os.path.join(root, "corrupt.jpg")])
        self.assertEqual(sorted(os.listdir(output)), [
            f"image_caption-0000{i}-of-00003.tfrecord" for i in range(3)] + ["schema.json"])
        schema = records.read_schema(output)
        self.assertEqual(schema["num_examples"], 9)
        # 10 images in manifest order, 3 / 4 / 3 to a shard; corrupt.jpg (the
        # last) is skipped.
        self.assertEqual([s["num_examples"] for s in schema["shards"]], [3, 4, 2])
        self.assertEqual((schema["manifest_rows"], schema["num_skipped"]), (12, 2))

        examples, read_report = load_tfrecords(output, image_shape=IMAGE_SHAPE)
        self.assertEqual(examples.element_spec["images"].shape, (16, 16, 3))
        packed = by_captions(examples)
        with self.assertLogs("mmzoo.data", "WARNING"):
            reference, _ = load_image_caption_files(manifest, image_shape=IMAGE_SHAPE)
            expected = by_captions(reference)
        self.assertEqual(sorted(packed), sorted(expected))
        self.assertIn(("caption 0", "another caption of image 0"), packed)
        for captions, pixels in expected.items():
            np.testing.assert_array_equal(packed[captions], pixels)  # same decoders, bit for bit
        self.assertEqual(read_report.num_skipped, 0)
        # The same sequence every time.
        def order(**kwargs):
            dataset = load_tfrecords(output, IMAGE_SHAPE, **kwargs)[0]
            return [tuple(c.decode() for c in x["captions"].numpy()) for x in dataset]

        self.assertEqual(order(), list(packed))
        # Records shuffled before decoding: the same examples in another
        # order, the same for the same seed, anew in every pass.
        shuffled = order(shuffle_buffer=9, seed=1)
        self.assertCountEqual(shuffled, list(packed))
        self.assertNotEqual(shuffled, list(packed))
        self.assertEqual(order(shuffle_buffer=9, seed=1), shuffled)
        passes = load_tfrecords(output, IMAGE_SHAPE, shuffle_buffer=9, seed=1)[0].repeat(2)
        passes = [tuple(c.decode() for c in x["captions"].numpy()) for x in passes]
        self.assertEqual(passes[:9], shuffled)
        self.assertCountEqual(passes[9:], shuffled)
        self.assertNotEqual(passes[9:], shuffled)
        # A checkpointed iterator resumes at the same record, mid-buffer.
        iterator = iter(load_tfrecords(output, IMAGE_SHAPE, shuffle_buffer=4, seed=1)[0]
                        .repeat())
        for _ in range(3):
            next(iterator)
        checkpoint = tf.train.Checkpoint(iterator=iterator)
        path = checkpoint.write(os.path.join(self.get_temp_dir(), "iterator"))
        after = [tuple(next(iterator)["captions"].numpy()) for _ in range(12)]
        checkpoint.restore(path)
        self.assertEqual([tuple(next(iterator)["captions"].numpy()) for _ in range(12)], after)
        for value in (0, 2.5):
            with self.assertRaisesRegex(ValueError, f"Received: shuffle_buffer={value!r}"):
                load_tfrecords(output, IMAGE_SHAPE, shuffle_buffer=value)

    def test_strict_stops_at_the_bad_file_and_leaves_no_finished_pack(self):
        root = self.get_temp_dir()
        manifest = write_manifest(root, num_images=2)
        output = os.path.join(root, "records")
        with self.assertRaisesRegex(ValueError, "missing.png: file not found"):
            pack_records(manifest, output, num_shards=1, strict=True, verbose=False)
        with open(os.path.join(root, "missing.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n truncated")
        with self.assertRaisesRegex(ValueError, "missing.png: cannot decode image"):
            pack_records(manifest, output, num_shards=1, strict=True, verbose=False)
        self.assertFalse(os.path.exists(os.path.join(output, "schema.json")))
        self.assertEqual([e for e in os.listdir(output) if e.endswith(".partial")], [])
        with self.assertRaisesRegex(ValueError, "did not finish.*run the same"):
            load_tfrecords(output)

    def test_interrupted_pack_run_again_keeps_its_finished_shards(self):
        root = self.get_temp_dir()
        manifest = write_manifest(root, bad=False)
        output = os.path.join(root, "records")
        stored = records._stored_image
        calls = []

        def stop_in_the_third_shard(path):
            calls.append(path)
            if len(calls) == 8:
                raise KeyboardInterrupt
            return stored(path)

        with mock.patch.object(records, "_stored_image", stop_in_the_third_shard):
            with self.assertRaises(KeyboardInterrupt):
                pack_records(manifest, output, num_shards=3, num_threads=1, verbose=False)
        finished = sorted(e for e in os.listdir(output) if e.endswith(".tfrecord"))
        self.assertEqual(finished, [f"image_caption-0000{i}-of-00003.tfrecord" for i in (0, 1)])
        self.assertEqual([e for e in os.listdir(output) if e.endswith(".partial")], [])
        before = [os.stat(os.path.join(output, name)).st_ino for name in finished]

        with mock.patch.object(records, "_stored_image", side_effect=stored) as again:
            pack_records(manifest, output, num_shards=3, verbose=False)
        self.assertEqual(again.call_count, 3)  # the third shard's images only
        self.assertEqual([os.stat(os.path.join(output, n)).st_ino for n in finished], before)
        fresh = os.path.join(root, "fresh")
        pack_records(manifest, fresh, num_shards=3, verbose=False)
        self.assertEqual(shard_bytes(output), shard_bytes(fresh))

    def test_sigkill_while_packing_then_run_again(self):
        root = self.get_temp_dir()
        manifest = write_manifest(root, bad=False)
        output = os.path.join(root, "records")
        # Killed while the second shard is half written.
        script = textwrap.dedent(f"""
            import os, signal
            from mmzoo.data import records
            stored, calls = records._stored_image, []
            def killed(path):
                calls.append(path)
                if len(calls) == 5:
                    os.kill(os.getpid(), signal.SIGKILL)
                return stored(path)
            records._stored_image = killed
            records.pack_records({manifest!r}, {output!r}, num_shards=3, num_threads=1,
                                 verbose=False)
        """)
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
        self.assertEqual(proc.returncode, -signal.SIGKILL, proc.stderr[-2000:])
        entries = os.listdir(output)
        self.assertNotIn("schema.json", entries)
        self.assertIn("image_caption-00000-of-00003.tfrecord", entries)
        self.assertNotIn("image_caption-00001-of-00003.tfrecord", entries)
        self.assertTrue([e for e in entries if e.endswith(".partial")])  # the half-written one

        pack_records(manifest, output, num_shards=3, verbose=False)
        self.assertEqual(sorted(os.listdir(output)), [
            f"image_caption-0000{i}-of-00003.tfrecord" for i in range(3)] + ["schema.json"])
        fresh = os.path.join(root, "fresh")
        pack_records(manifest, fresh, num_shards=3, verbose=False)
        self.assertEqual(shard_bytes(output), shard_bytes(fresh))
        self.assertLen(list(load_tfrecords(output, IMAGE_SHAPE)[0]), 9)

    def test_output_directory_rules(self):
        root = self.get_temp_dir()
        manifest = write_manifest(root, num_images=4, bad=False)
        # Files mmzoo did not write: refused, overwrite or not, and kept.
        for overwrite in (False, True):
            with self.assertRaisesRegex(ValueError, "holds files that mmzoo did not pack "
                                        r"\(captions.jsonl, image0.png"):
                pack_records(manifest, root, num_shards=2, overwrite=overwrite, verbose=False)
        self.assertTrue(os.path.exists(manifest))
        with self.assertRaisesRegex(ValueError, "`output_dir` is a file"):
            pack_records(manifest, manifest, verbose=False)
        output = os.path.join(root, "records")
        pack_records(manifest, output, num_shards=2, verbose=False)
        with self.assertRaisesRegex(ValueError, "already holds packed records"):
            pack_records(manifest, output, num_shards=4, verbose=False)
        pack_records(manifest, output, num_shards=4, overwrite=True, verbose=False)
        self.assertEqual(len(records.read_schema(output)["shards"]), 4)
        self.assertLen(os.listdir(output), 5)  # the earlier pack's shards are gone

        # An unfinished pack of another shard count.
        os.makedirs(os.path.join(root, "unfinished", ".pack"))
        with open(os.path.join(root, "unfinished", ".pack", "plan.json"), "w") as f:
            json.dump({"kind": "image_caption", "num_shards": 3}, f)
        with self.assertRaisesRegex(ValueError, "unfinished pack of another manifest"):
            pack_records(manifest, os.path.join(root, "unfinished"), verbose=False,
                         num_shards=2)
        pack_records(manifest, os.path.join(root, "unfinished"), num_shards=2, overwrite=True,
                     verbose=False)

        for value in (0, True, 2.0, "2"):
            with self.assertRaisesRegex(ValueError, f"Received: num_shards={value!r}"):
                pack_records(manifest, os.path.join(root, "other"), num_shards=value)
        with self.assertRaisesRegex(ValueError, r"at most the number of usable examples \(4\)"):
            pack_records(manifest, os.path.join(root, "other"), num_shards=5)
        self.assertFalse(os.path.exists(os.path.join(root, "other")))


class BadShardsTest(TestCase):
    def setUp(self):
        super().setUp()
        self.root = self.get_temp_dir()
        manifest = write_manifest(self.root, bad=False)
        self.output = os.path.join(self.root, "records")
        pack_records(manifest, self.output, num_shards=3, verbose=False)
        self.shards = [os.path.join(self.output, s["file"])
                       for s in records.read_schema(self.output)["shards"]]

    def read(self, strict=False, shuffle_buffer=None):
        examples, report = load_tfrecords(self.output, IMAGE_SHAPE, strict=strict,
                                          shuffle_buffer=shuffle_buffer, seed=0)
        return list(examples), report

    def test_truncated_or_missing_shard_is_skipped_and_named(self):
        with open(self.shards[1], "r+b") as f:
            f.truncate(100)
        os.remove(self.shards[2])
        with self.assertLogs("mmzoo.data", "WARNING"):
            examples, report = self.read()
        self.assertLen(examples, 3)
        self.assertEqual(report.skipped[self.shards[2]], "shard missing")
        self.assertRegex(report.skipped[self.shards[1]],
                         r"truncated or changed: 100 bytes, \d+ when packed")
        with self.assertRaisesRegex(ValueError, "image_caption-00001-of-00003.tfrecord: truncated"):
            self.read(strict=True)
        os.remove(self.shards[0])
        os.remove(self.shards[1])
        with self.assertLogs("mmzoo.data", "WARNING"):
            with self.assertRaisesRegex(ValueError, "No readable shard"):
                self.read()

    def test_a_corrupt_record_and_the_rest_of_its_shard_are_skipped_and_named(self):
        # Flip a byte inside the second record's data: it fails its checksum,
        # and TensorFlow reads no further in that shard.
        with open(self.shards[0], "rb") as f:
            data = bytearray(f.read())
        (first_length,) = np.frombuffer(bytes(data[:8]), "<u8")
        second = 12 + int(first_length) + 4
        data[second + 12 + 40] ^= 0xFF
        with open(self.shards[0], "wb") as f:
            f.write(data)
        for shuffle_buffer in (None, 4):  # records shuffled before decoding, too
            with self.assertLogs("mmzoo.data", "WARNING"):
                examples, report = self.read(shuffle_buffer=shuffle_buffer)
            self.assertLen(examples, 7)
            self.assertEqual(report.skipped, {
                f"{self.shards[0]} record 1": "fails its checksum (a corrupt record)",
                f"{self.shards[0]} record 2": "unreadable: after record 1, which fails its "
                                              "checksum (a shard is not read past a corrupt "
                                              "record)",
            })
            with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                        "00000-of-00003.tfrecord record 1: fails its checksum"):
                self.read(strict=True, shuffle_buffer=shuffle_buffer)

    def test_an_image_tensorflow_cannot_decode_is_skipped_and_named(self):
        # Records written by hand around bytes that are no image: two in a
        # row, then a good one.
        good = next(iter(tf.data.TFRecordDataset(self.shards[0]))).numpy()
        with tf.io.TFRecordWriter(self.shards[2]) as writer:
            for name in (b"x.png", b"y.png"):
                writer.write(records._example({"image": [b"\x89PNG\r\n\x1a\nbad"],
                                               "captions": [b"x"], "source": [name]}))
            writer.write(good)
        schema = records.read_schema(self.output)
        schema["shards"][2].update(num_records=3, num_examples=3,
                                   num_bytes=os.path.getsize(self.shards[2]))
        with open(os.path.join(self.output, "schema.json"), "w") as f:
            json.dump(schema, f)
        for shuffle_buffer in (None, 4, 16):  # records shuffled before decoding, too
            with self.assertLogs("mmzoo.data", "WARNING"):
                examples, report = self.read(shuffle_buffer=shuffle_buffer)
            self.assertLen(examples, 7)
            self.assertEqual(sorted(report.skipped), [f"{self.shards[2]} record {i}"
                                                      for i in (0, 1)])
            for reason in report.skipped.values():
                self.assertRegex(reason, "^cannot decode image .*Error")
            with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                        "00002-of-00003.tfrecord record [01]: cannot decode"):
                self.read(strict=True, shuffle_buffer=shuffle_buffer)

    def test_not_a_finished_pack(self):
        with self.assertRaisesRegex(ValueError, "No directory of packed records"):
            load_tfrecords(os.path.join(self.root, "nowhere"))
        with self.assertRaisesRegex(ValueError, "No schema.json: not a directory of records"):
            load_tfrecords(self.root)
        schema_path = os.path.join(self.output, "schema.json")
        schema = records.read_schema(self.output)
        for change, message in (({"kind": "audio"}, "kind 'audio'"),
                                ({"version": 2}, "version 2"),
                                ({"format": "other"}, "not an mmzoo records schema"),
                                ({"shards": [{"file": "x"}]}, "is damaged: `shards` must list"),
                                ({"num_examples": None}, "is damaged")):
            with open(schema_path, "w") as f:
                json.dump({**schema, **change}, f)
            with self.assertRaisesRegex(ValueError, message):
                load_tfrecords(self.output)
        with open(schema_path, "w") as f:
            json.dump(schema, f)
        with self.assertRaisesRegex(ValueError, "image_shape"):
            load_tfrecords(self.output, image_shape=(16,))
        with open(schema_path, "w") as f:
            f.write("{")
        with self.assertRaisesRegex(ValueError, "Cannot read .*schema.json"):
            load_tfrecords(self.output)


class ShareTest(TestCase):
    """`load_tfrecords(input_context=...)`: each input pipeline reads its share."""

    def setUp(self):
        super().setUp()
        root = self.get_temp_dir()
        manifest = write_manifest(root, num_images=12, bad=False)
        self.output = os.path.join(root, "records")
        pack_records(manifest, self.output, num_shards=3, verbose=False)
        self.all = sorted(by_captions(load_tfrecords(self.output, IMAGE_SHAPE)[0]))

    def shares(self, pipelines):
        out = []
        for pipeline in range(pipelines):
            context = tf.distribute.InputContext(pipelines, pipeline, pipelines)
            examples, report = load_tfrecords(self.output, IMAGE_SHAPE, input_context=context)
            out.append((sorted(by_captions(examples)), report))
        return out

    def test_every_example_once_by_shard_or_by_position(self):
        # 2 pipelines: shards 0 and 2, and shard 1; 4 pipelines (more than
        # the 3 shards): every 4th record of each shard.
        for pipelines, sizes in ((2, [8, 4]), (4, [3, 3, 3, 3])):
            shares = self.shares(pipelines)
            self.assertEqual([len(captions) for captions, _ in shares], sizes)
            self.assertEqual([report.num_records for _, report in shares], sizes)
            together = [c for captions, _ in shares for c in captions]
            self.assertEqual(sorted(together), self.all)  # each once
        with self.assertRaisesRegex(ValueError, "`input_context` must be"):
            load_tfrecords(self.output, input_context=2)

    def test_a_pipeline_decodes_only_its_share(self):
        # The record at position 1 of the last shard holds no image: only
        # the pipeline whose share it is decodes it, and reports it.
        schema = records.read_schema(self.output)
        shard = os.path.join(self.output, schema["shards"][2]["file"])
        kept = [r.numpy() for r in tf.data.TFRecordDataset(shard)]
        kept[1] = records._example({"image": [b"\xff\xd8\xff bad"], "captions": [b"x"],
                                    "source": [b"x.jpg"]})
        with tf.io.TFRecordWriter(shard) as writer:
            for record in kept:
                writer.write(record)
        schema["shards"][2]["num_bytes"] = os.path.getsize(shard)
        with open(os.path.join(self.output, "schema.json"), "w") as f:
            json.dump(schema, f)
        for pipelines, owner in ((2, 0), (4, 1)):  # by shard (0 and 2), by position
            with self.assertLogs("mmzoo.data", "WARNING"):
                shares = self.shares(pipelines)
            skipped = [sorted(report.skipped) for _, report in shares]
            self.assertEqual(skipped[owner], [f"{shard} record 1"], pipelines)
            self.assertEqual([s for i, s in enumerate(skipped) if i != owner],
                             [[]] * (pipelines - 1))


class RecordsCommandTest(TestCase):
    def test_pack_command_then_data_spec(self):
        root = self.get_temp_dir()
        manifest = write_manifest(root, num_images=4, bad=False)
        output = os.path.join(root, "records")
        out = io.StringIO()
        with mock.patch("sys.stdout", out), mock.patch("sys.stderr", io.StringIO()) as err:
            self.assertEqual(cli.main(["data", "pack", manifest, output, "--num-shards", "2"]), 0)
        self.assertIn("Packed 4 examples into 2 shards", out.getvalue())
        self.assertIn(f"--data tfrecord:{output}", out.getvalue())
        self.assertIn("captions.jsonl: 5 records, 0 skipped", err.getvalue())
        with mock.patch("sys.stderr", io.StringIO()) as err:
            self.assertEqual(cli.main(["data", "pack", manifest, output]), 2)
        self.assertIn("already holds packed records", err.getvalue())

        # The recipes read `tfrecord:DIR` as they read the manifest.
        with mock.patch("sys.stderr", io.StringIO()):
            examples, report = _common.load_caption_examples(
                f"tfrecord:{output}", "train", (16, 16, 3), num_examples=3)
        self.assertLen(list(examples), 3)
        self.assertEqual(report.num_records, 4)
        with self.assertRaisesRegex(ValueError, "holds image_caption records; video_qa "
                                    "records are needed here"):
            video_qa.load_video_qa_examples(f"tfrecord:{output}", "train", (8, 16, 16, 3))


def write_video_manifest(root):
    """Clips as a JPEG frame folder (12 frames, two questions), a short PNG
    folder, uint8 / float `.npy` and an RGBA `.npz`, plus two bad clips."""
    rng = np.random.RandomState(0)
    for folder, count, fmt in (("jpeg_frames", 12, "JPEG"), ("png_frames", 3, "PNG")):
        os.makedirs(os.path.join(root, folder))
        for t in range(count):
            PIL.Image.fromarray(rng.randint(0, 256, (20, 24, 3), dtype=np.uint8)).save(
                os.path.join(root, folder, f"{t:03d}.{fmt.lower()}"), format=fmt)
    np.save(os.path.join(root, "uint8.npy"), rng.randint(0, 256, (10, 18, 22, 3), np.uint8))
    np.save(os.path.join(root, "float.npy"), rng.rand(9, 18, 22).astype("float32"))
    np.savez(os.path.join(root, "rgba.npz"), frames=rng.randint(0, 256, (7, 16, 16, 4), np.uint8))
    # Frames of two formats (TensorFlow's JPEG decoder reads PNG too).
    os.makedirs(os.path.join(root, "mixed_frames"))
    for t, fmt in enumerate(("JPEG", "PNG")):
        PIL.Image.fromarray(rng.randint(0, 256, (20, 24, 3), dtype=np.uint8)).save(
            os.path.join(root, "mixed_frames", f"{t:03d}.jpg"), format=fmt)
    np.save(os.path.join(root, "nan.npy"), np.full((4, 8, 8, 3), np.nan, "float32"))
    os.makedirs(os.path.join(root, "no_frames"))
    rows = [{"video_path": name, "question": f"what is in {name}?", "answer": "red",
             "question_type": "color"}
            for name in ("jpeg_frames", "png_frames", "uint8.npy", "float.npy", "rgba.npz",
                         "nan.npy", "no_frames", "mixed_frames")]
    rows.append({"video_path": "jpeg_frames", "question": "which way?", "answer": "left"})
    path = os.path.join(root, "qa.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    return path


class VideoQARecordsTest(TestCase):
    def test_packed_clips_equal_the_manifest_loaders(self):
        root = self.get_temp_dir()
        manifest = write_video_manifest(root)
        output = os.path.join(root, "records")
        with self.assertLogs("mmzoo.data", "WARNING"):
            report = pack_records(manifest, output, num_shards=2, verbose=False)
        self.assertEqual(sorted(report.skipped), [os.path.join(root, "nan.npy"),
                                                  os.path.join(root, "no_frames")])
        self.assertIn("non-finite values", report.skipped[os.path.join(root, "nan.npy")])
        schema = records.read_schema(output)
        self.assertEqual((schema["kind"], schema["num_examples"]), ("video_qa", 7))
        # Six clips, the JPEG one with both its questions in one record.
        self.assertEqual(sum(s["num_records"] for s in schema["shards"]), 6)

        def examples(dataset):
            return {x["questions"].numpy().decode(): (
                x["videos"].numpy(), x["answers"].numpy(), x["question_types"].numpy())
                for x in dataset}

        packed = examples(load_tfrecords(output, (16, 16), num_frames=8)[0])
        with self.assertLogs("mmzoo.data", "WARNING"):
            expected = examples(load_video_qa_files(manifest, 8, (16, 16))[0])
        self.assertEqual(sorted(packed), sorted(expected))
        for question, (videos, answer, question_type) in expected.items():
            self.assertEqual(packed[question][1:], (answer, question_type))
            self.assertEqual(packed[question][0].shape, (8, 16, 16, 3))
            # Frame files and uint8 arrays bit for bit; float frames are
            # stored as uint8 (within half a level, before resizing).
            atol = 0.5 / 255 if question == "what is in float.npy?" else 0
            np.testing.assert_allclose(packed[question][0], videos, rtol=0, atol=atol + 1e-7)
        # Any number of frames, chosen as the manifest loader chooses them.
        for num_frames in (1, 5):
            packed = examples(load_tfrecords(output, (16, 16), num_frames=num_frames)[0])
            with self.assertLogs("mmzoo.data", "WARNING"):
                expected = examples(load_video_qa_files(manifest, num_frames, (16, 16))[0])
            np.testing.assert_array_equal(packed["which way?"][0], expected["which way?"][0])

        with mock.patch("sys.stderr", io.StringIO()):
            loaded, _ = video_qa.load_video_qa_examples(
                f"tfrecord:{output}", "train", (4, 16, 16, 3), num_examples=3)
        self.assertEqual([tuple(x["videos"].shape) for x in loaded], [(4, 16, 16, 3)] * 3)
        with self.assertRaisesRegex(ValueError, "holds video_qa records; image_caption"):
            _common.load_caption_examples(f"tfrecord:{output}", "train", (16, 16, 3))
        with self.assertRaisesRegex(ValueError, "Received: num_frames=0"):
            load_tfrecords(output, num_frames=0)

        # A record written by hand around a frame that is no image.
        shard = os.path.join(output, schema["shards"][1]["file"])
        with tf.io.TFRecordWriter(shard) as writer:
            writer.write(records._example({"frames": [b"\xff\xd8\xff bad"], "question": [b"q"],
                                           "answer": [b"a"], "question_type": [b""]}))
        schema["shards"][1].update(num_records=1, num_examples=1,
                                   num_bytes=os.path.getsize(shard))
        with open(os.path.join(output, "schema.json"), "w") as f:
            json.dump(schema, f)
        with self.assertLogs("mmzoo.data", "WARNING"):
            dataset, report = load_tfrecords(output, (16, 16))
            self.assertNotIn("q", examples(dataset))
        self.assertRegex(report.skipped[f"{shard} record 0"], "^cannot decode video .*Error")
