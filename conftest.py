"""Test configuration shared by the whole suite.

* Quiets TensorFlow's start-up logging.
* Splits the host CPU into two logical devices, so that `tf.distribute`
  strategies (MirroredStrategy over `/cpu:0` and `/cpu:1`) can be tested on a
  machine without accelerators. This has to happen before TensorFlow
  initialises its devices, hence here, at import time.
* Defines the opt-in markers `slow` (`--run-slow`) and `large` (`--run-large`).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

NUM_LOGICAL_CPUS = 2


def _split_cpu():
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0],
            [tf.config.LogicalDeviceConfiguration()] * NUM_LOGICAL_CPUS,
        )
    except RuntimeError:
        # Devices were already initialised (e.g. conftest imported twice).
        pass
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Each xdist worker gets one core's worth of threads, so two workers
        # on a 2-core machine do not oversubscribe it.
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass


_split_cpu()


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="run tests marked slow"
    )
    parser.addoption(
        "--run-large", action="store_true", default=False, help="run tests marked large"
    )


def pytest_collection_modifyitems(config, items):
    for marker in ("slow", "large"):
        if config.getoption(f"--run-{marker}"):
            continue
        skip = pytest.mark.skip(reason=f"marked {marker}; pass --run-{marker} to run")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)
