"""mmzoo: trainable multimodal models for Keras 3 / TensorFlow.

Sub-packages:
    mmzoo.layers     small serializable layers (keras.ops only)
    mmzoo.encoders   image, text and video tower builders
    mmzoo.presets    named configurations for every builder
    mmzoo.data       tf.data pipelines, tokenizers, built-in datasets
    mmzoo.testing    `TestCase` with the run_*_test helpers
"""

__version__ = "0.1.0.dev0"

from mmzoo import encoders  # noqa: E402,F401
from mmzoo import layers  # noqa: E402,F401
from mmzoo import presets  # noqa: E402,F401
