import os
import subprocess
import sys
import textwrap

import tensorflow as tf

from mmzoo.testing import TestCase
from mmzoo.training import get_strategy
from mmzoo.training import is_chief


class GetStrategyTest(TestCase):
    def test_unknown_name_lists_the_choices(self):
        with self.assertRaisesRegex(
            ValueError,
            r"\['auto', 'one_device', 'mirrored', 'multi_worker', 'tpu'\]\. "
            r"Received: strategy='horovod'",
        ):
            get_strategy("horovod")

    def test_mirrored_uses_the_logical_cpus_without_gpus(self):
        strategy = get_strategy("mirrored")
        self.assertIsInstance(strategy, tf.distribute.MirroredStrategy)
        self.assertEqual(strategy.num_replicas_in_sync, 2)  # conftest splits the CPU

    def test_one_device(self):
        strategy = get_strategy("one_device")
        self.assertIsInstance(strategy, tf.distribute.OneDeviceStrategy)
        self.assertEqual(strategy.num_replicas_in_sync, 1)

    def test_auto_without_accelerators_is_the_default_strategy(self):
        self.assertIs(get_strategy("auto"), tf.distribute.get_strategy())

    def test_same_arguments_give_the_same_strategy(self):
        # Two MirroredStrategy objects over the same devices would share
        # collective keys and fail at run time.
        self.assertIs(get_strategy("mirrored"), get_strategy("mirrored"))
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        self.assertIs(get_strategy("mirrored", devices=devices), get_strategy("mirrored"))

    def test_a_single_process_is_the_chief(self):
        self.assertTrue(is_chief(get_strategy("mirrored")))
        self.assertTrue(is_chief(tf.distribute.get_strategy()))

    def test_coexists_with_a_mirrored_strategy_made_directly(self):
        # In a child process: a strategy made directly here would share its
        # collective keys with any other such strategy in this test process.
        script = textwrap.dedent(
            """
            import tensorflow as tf
            (cpu,) = tf.config.list_physical_devices("CPU")
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
            from mmzoo.training import get_strategy

            def all_reduce(strategy, size):
                @tf.function
                def step():
                    return strategy.run(lambda: tf.distribute.get_replica_context()
                                        .all_reduce("sum", tf.ones([size])))
                return strategy.experimental_local_results(step())[0].numpy().tolist()

            direct = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
            print(all_reduce(direct, 3), all_reduce(get_strategy("mirrored"), 5))
            """
        )
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        self.assertEqual(proc.returncode, 0, msg=proc.stderr[-3000:])
        self.assertEqual(proc.stdout.split("\n")[-2], str([2.0] * 3) + " " + str([2.0] * 5))
