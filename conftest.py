"""Test configuration shared by the whole suite.

* Quiets TensorFlow's start-up logging.
* Splits the host CPU into two logical devices, so that `tf.distribute`
  strategies (MirroredStrategy over `/cpu:0` and `/cpu:1`) can be tested on a
  machine without accelerators. This has to happen before TensorFlow
  initialises its devices, hence here, at import time.
* Defines the opt-in markers `slow` (`--run-slow`) and `large` (`--run-large`).
* Turns TensorFlow's op determinism off again after a test that turned it on
  (`mmzoo train` and the recipes do, process-wide), so that it does not leak
  into the tests that run after it in the same worker.
* Compiles XLA programs without LLVM's optimisation passes: the suite's
  models are tiny and run a few steps, so compiling dominates; XLA's own
  graph passes, and so what is computed, are unchanged. Set in the
  environment, so the processes tests start (the `mmzoo` command, a fresh
  process loading a `.keras` file, the JAX backend) compile the same way.
  Benchmarks do not import this file.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
_FAST_XLA_COMPILE = "--xla_backend_optimization_level=0"
if _FAST_XLA_COMPILE not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_XLA_COMPILE}".strip()

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


@pytest.fixture(autouse=True)
def _restore_op_determinism():
    # TensorFlow has no public call to turn op determinism off; its own tests
    # use this one.
    from tensorflow.python.framework import config

    was_enabled = config.is_op_determinism_enabled()
    yield
    if config.is_op_determinism_enabled() and not was_enabled:
        config.disable_op_determinism()


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
