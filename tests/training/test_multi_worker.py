"""Two worker processes on 127.0.0.1 under MultiWorkerMirroredStrategy."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

import training_child
from mmzoo.data import pack_records
from mmzoo.testing import TestCase
from mmzoo.training import latest_checkpoint
from mmzoo.training import read_metrics

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "training_child.py")
TIMEOUT = 240


def _free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start_workers(model_dir, out_dir, command=None, **flags):
    """Two workers running training_child.py, or `mmzoo COMMAND...` when given."""
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TF_CONFIG": json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            ),
            # The preemption handler probes the GCE metadata server to learn
            # the platform; point it at a closed loopback port.
            "GCE_METADATA_IP": "127.0.0.1:9",
        }
        args = [sys.executable, CHILD, "--multi-worker", "--model-dir", model_dir,
                "--out", os.path.join(out_dir, f"worker{index}.npz"), "--dropout-rate", "0"]
        if command is not None:
            args = [sys.executable, "-m", "mmzoo.cli", *command, "--model-dir", model_dir]
        for name, value in flags.items():
            flag = f"--{name.replace('_', '-')}"
            args += [flag] if value is True else [flag, str(value)]
        procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    return procs


def _kill_all(procs):
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout and not proc.stdout.closed:
            proc.stdout.close()


def _wait_all(procs, timeout=TIMEOUT):
    """Return codes and outputs; kills every child still running at the deadline."""
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for proc in procs:
            try:
                out, _ = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                raise AssertionError("a worker timed out")
            outputs.append(out)
    finally:
        _kill_all(procs)
    return [p.returncode for p in procs], outputs


def _reference(steps, model_dir=None):
    """One process, one device, the same global batch."""
    trainer = training_child.make_trainer(
        tf.distribute.get_strategy(), model_dir, dropout_rate=0.0)
    rows = trainer.fit(training_child.make_dataset(), steps=steps, log_every=1, verbose=0)
    return trainer, [r["loss"] for r in rows]


def _variables(trainer):
    return [v.numpy() for v in trainer.model.variables]


@pytest.mark.slow
class MultiWorkerTest(TestCase):
    def setUp(self):
        super().setUp()
        self.directory = self.get_temp_dir()
        self.model_dir = os.path.join(self.directory, "run")

    def _wait_for_logged_steps(self, procs, count):
        """Until the chief has logged `count` steps, every worker still running."""
        deadline = time.monotonic() + TIMEOUT
        while len(read_metrics(self.model_dir)) < count:
            self.assertTrue(all(p.poll() is None for p in procs), msg="a worker ended")
            self.assertLess(time.monotonic(), deadline, msg="no progress")
            time.sleep(0.05)

    def test_two_workers_resume_and_train_like_one_process(self):
        # One process trains 6 steps and checkpoints; both workers restore
        # that checkpoint (the non-chief from the chief's directory) and go on.
        _reference(6, self.model_dir)
        procs = _start_workers(self.model_dir, self.directory, steps=12)
        self.addCleanup(_kill_all, procs)
        codes, outputs = _wait_all(procs)
        self.assertEqual(codes, [0, 0], msg="\n".join(o[-2000:] for o in outputs))

        reference, losses = _reference(12)
        results = [np.load(os.path.join(self.directory, f"worker{i}.npz")) for i in range(2)]
        for result in results:
            self.assertEqual(str(result["handler"]), "PreemptionCheckpointHandler")
            self.assertEqual(list(result["steps"]), list(range(7, 13)))
            self.assertAllClose(result["losses"], losses[6:], atol=1e-5)
            for i, expected in enumerate(_variables(reference)):
                self.assertAllClose(result[f"w{i}"], expected, atol=1e-5)
        for key in results[0].files:
            np.testing.assert_array_equal(results[0][key], results[1][key], err_msg=key)
        self.assertEqual(os.path.basename(latest_checkpoint(self.model_dir)), "ckpt-12")
        self.assertFalse(os.path.exists(os.path.join(self.model_dir, "workertemp_1")))

    def test_contrastive_accumulation_on_two_workers_equals_one_big_batch(self):
        # CLIPLoss couples the batch: each update's 2 micro-batches of 8 (4
        # rows per worker) are scored together, negatives gathered from both
        # workers, as one process scores a batch of 16.
        procs = _start_workers(self.model_dir, self.directory, steps=3, contrastive=True,
                               accumulation_steps=2)
        self.addCleanup(_kill_all, procs)
        codes, outputs = _wait_all(procs)
        self.assertEqual(codes, [0, 0], msg="\n".join(o[-2000:] for o in outputs))
        reference = training_child.make_contrastive_trainer(
            tf.distribute.get_strategy(), None, accumulation_steps=1)
        rows = reference.fit(training_child.make_contrastive_dataset(16), steps=3, log_every=1,
                             verbose=0)
        for index in range(2):
            result = np.load(os.path.join(self.directory, f"worker{index}.npz"))
            self.assertAllClose(result["losses"], [r["loss"] for r in rows], atol=1e-5)
            for i, expected in enumerate(_variables(reference)):
                self.assertAllClose(result[f"w{i}"], expected, atol=1e-5)

    def test_preemption_notice_saves_through_the_handler(self):
        steps = 30
        procs = _start_workers(self.model_dir, self.directory, steps=steps,
                               checkpoint_every=100, step_delay=0.1)
        self.addCleanup(_kill_all, procs)
        self._wait_for_logged_steps(procs, 5)
        procs[1].send_signal(signal.SIGTERM)  # the preemption notice, to the non-chief
        codes, outputs = _wait_all(procs)
        # All workers stop after the same step, save, and exit with 42
        # (TensorFlow's default exit code for this handler off Google Cloud).
        self.assertEqual(codes, [42, 42], msg="\n".join(o[-2000:] for o in outputs))
        saved = int(os.path.basename(latest_checkpoint(self.model_dir)).split("-")[1])
        self.assertBetween(saved, 5, steps - 1)  # not a periodic checkpoint
        self.assertEqual([r["step"] for r in read_metrics(self.model_dir)][-1], saved)

        # The saved state is that of step `saved`, dataset position included:
        # resumed here, it ends where an uninterrupted run does.
        resumed = training_child.make_trainer(
            tf.distribute.get_strategy(), self.model_dir, dropout_rate=0.0)
        resumed.fit(training_child.make_dataset(), steps=steps, verbose=0)
        reference, _ = _reference(steps)
        self.assertAllCloseNested(_variables(resumed), _variables(reference), atol=1e-5)

    # ------------------------------------------------ per-worker input
    def _input_checkpoint(self, pipeline, step):
        return os.path.join(self.model_dir, "input", f"pipeline-{pipeline:05d}-of-00002",
                            f"ckpt-{step}.index")

    def test_per_worker_input_reads_each_example_once_and_trains_like_one_process(self):
        steps = 11  # 88 examples: two epochs of 44
        procs = _start_workers(self.model_dir, self.directory, steps=steps, per_worker=True)
        self.addCleanup(_kill_all, procs)
        codes, outputs = _wait_all(procs)
        self.assertEqual(codes, [0, 0], msg="\n".join(o[-2000:] for o in outputs))
        results = [np.load(os.path.join(self.directory, f"worker{i}.npz")) for i in range(2)]

        # Each worker decoded only its share: 4 examples a step, not the
        # global batch of 8; together, every example of the first epoch once.
        decoded = [list(result["decoded"]) for result in results]
        self.assertEqual([len(d) for d in decoded], [steps * 4, steps * 4])
        first_epoch = decoded[0][:22] + decoded[1][:22]
        self.assertCountEqual(first_epoch, range(training_child.NUM_EXAMPLES))
        self.assertCountEqual(decoded[0] + decoded[1], list(range(44)) * 2)

        # The two workers' batches together are one process's global batches.
        reference, losses = _reference(steps)
        for result in results:
            self.assertAllClose(result["losses"], losses, atol=1e-5)
            for i, expected in enumerate(_variables(reference)):
                self.assertAllClose(result[f"w{i}"], expected, atol=1e-5)
        # Each worker's position beside the chief's checkpoint, which is the
        # only copy of the model.
        self.assertEqual(os.path.basename(latest_checkpoint(self.model_dir)), f"ckpt-{steps}")
        for pipeline in range(2):
            self.assertTrue(os.path.exists(self._input_checkpoint(pipeline, steps)))
        self.assertFalse(os.path.exists(os.path.join(self.model_dir, "workertemp_1")))

    def test_per_worker_input_resumes_exactly_after_sigkill(self):
        steps = 16
        procs = _start_workers(self.model_dir, self.directory, steps=steps, per_worker=True,
                               checkpoint_every=2, step_delay=0.1)
        self.addCleanup(_kill_all, procs)
        self._wait_for_logged_steps(procs, 7)
        _kill_all(procs)  # SIGKILL, wherever the workers are (a save included)
        saved = int(os.path.basename(latest_checkpoint(self.model_dir)).split("-")[1])
        self.assertBetween(saved, 6, steps - 1)
        for pipeline in range(2):
            self.assertTrue(os.path.exists(self._input_checkpoint(pipeline, saved)))

        procs = _start_workers(self.model_dir, self.directory, steps=steps, per_worker=True,
                               checkpoint_every=2)
        self.addCleanup(_kill_all, procs)
        codes, outputs = _wait_all(procs)
        self.assertEqual(codes, [0, 0], msg="\n".join(o[-2000:] for o in outputs))
        reference, losses = _reference(steps)
        for result in [np.load(os.path.join(self.directory, f"worker{i}.npz")) for i in range(2)]:
            self.assertEqual(list(result["steps"]), list(range(saved + 1, steps + 1)))
            self.assertEqual(len(result["decoded"]), (steps - saved) * 4)
            self.assertAllClose(result["losses"], losses[saved:], atol=1e-5)
            for i, expected in enumerate(_variables(reference)):
                self.assertAllClose(result[f"w{i}"], expected, atol=1e-5)

    def test_cli_trains_on_record_shards_with_each_worker_reading_its_share(self):
        rng = np.random.RandomState(0)
        rows = []
        for i in range(8):
            name = os.path.join(self.directory, f"image{i}.png")
            PIL.Image.fromarray(rng.randint(0, 256, (20, 20, 3), dtype=np.uint8)).save(name)
            rows.append({"image_path": name, "caption": f"a picture number {i}"})
        manifest = os.path.join(self.directory, "captions.jsonl")
        with open(manifest, "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
        shards = os.path.join(self.directory, "shards")
        pack_records(manifest, shards, num_shards=2, verbose=False)

        procs = _start_workers(self.model_dir, self.directory, command=[
            "train", "dual_encoder", "--data", f"tfrecord:{shards}", "--strategy",
            "multi_worker", "--steps", "3", "--batch-size", "4", "--checkpoint-every", "2",
        ])
        self.addCleanup(_kill_all, procs)
        codes, outputs = _wait_all(procs)
        self.assertEqual(codes, [0, 0], msg="\n".join(o[-2000:] for o in outputs))
        # The chief reports the share it read: one shard of two, 4 images.
        self.assertIn(f"{shards} (input pipeline 0 of 2): 4 records, 0 skipped", outputs[0])
        self.assertEqual(os.path.basename(latest_checkpoint(self.model_dir)), "ckpt-3")
        for pipeline in range(2):
            self.assertTrue(os.path.exists(self._input_checkpoint(pipeline, 3)))
        self.assertTrue(os.path.exists(os.path.join(self.model_dir, "model.keras")))

    def test_per_worker_input_preemption_saves_every_input_position(self):
        # SIGTERM to one worker: the handler saves through the trainer's
        # saver on every worker, the input positions with the checkpoint.
        procs = _start_workers(self.model_dir, self.directory, steps=30, per_worker=True,
                               checkpoint_every=100, step_delay=0.1)
        self.addCleanup(_kill_all, procs)
        self._wait_for_logged_steps(procs, 5)
        procs[1].send_signal(signal.SIGTERM)
        codes, outputs = _wait_all(procs)
        self.assertEqual(codes, [42, 42], msg="\n".join(o[-2000:] for o in outputs))
        saved = int(os.path.basename(latest_checkpoint(self.model_dir)).split("-")[1])
        self.assertBetween(saved, 5, 29)
        for pipeline in range(2):
            self.assertTrue(os.path.exists(self._input_checkpoint(pipeline, saved)))
