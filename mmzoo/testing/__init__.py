"""Test helpers for mmzoo and for users extending it."""

from mmzoo.testing import keras_hub_presets
from mmzoo.testing import tokenizers
from mmzoo.testing.archives import rewrite_archive
from mmzoo.testing.test_case import TestCase

__all__ = ["TestCase", "keras_hub_presets", "rewrite_archive", "tokenizers"]
