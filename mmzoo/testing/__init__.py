"""Test helpers for mmzoo and for users extending it."""

from mmzoo.testing.archives import rewrite_archive
from mmzoo.testing.test_case import TestCase

__all__ = ["TestCase", "rewrite_archive"]
