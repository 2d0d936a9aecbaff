"""mmzoo: trainable multimodal models for Keras 3 / TensorFlow.

Sub-packages:
    mmzoo.layers     small serializable layers (keras.ops only)
    mmzoo.encoders   image, text and video tower builders
    mmzoo.models     model families (image captioning, ...)
    mmzoo.losses     training losses
    mmzoo.evaluation metrics
    mmzoo.presets    named configurations for every builder
    mmzoo.data       tf.data pipelines, tokenizers, built-in datasets
    mmzoo.testing    `TestCase` with the run_*_test helpers
"""

__version__ = "0.1.0.dev0"

from mmzoo import encoders  # noqa: E402,F401
from mmzoo import evaluation  # noqa: E402,F401
from mmzoo import layers  # noqa: E402,F401
from mmzoo import losses  # noqa: E402,F401
from mmzoo import models  # noqa: E402,F401
from mmzoo import presets  # noqa: E402,F401

# TensorFlow-only parts load on first use (`mmzoo.data`, `mmzoo.export`,
# `mmzoo.training`), so `import mmzoo` stays light on other backends.
_LAZY_SUBMODULES = ("data", "export", "training")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"mmzoo.{name}")
    raise AttributeError(f"module 'mmzoo' has no attribute {name!r}")
