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

import importlib  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

# `import mmzoo` imports every model, encoder and layer: that registers their
# classes with Keras, which needs them registered to load a `.keras` file.
# The `mmzoo` command skips that (TensorFlow alone takes seconds to import),
# so `mmzoo --help` and `mmzoo presets` answer at once; its other commands
# import what they use, which registers it.
_EAGER = ("layers", "losses", "evaluation", "presets", "encoders", "models")
# TensorFlow-only parts load on first use, so `import mmzoo` stays light on
# other backends.
_LAZY = ("data", "export", "training", "recipes", "testing", "cli")


def lazy_attributes(package, exports):
    """`__getattr__` and `__dir__` for a package whose names load on first use (PEP 562).

    Args:
        package: str. The package's `__name__`.
        exports: dict mapping each public name to the module defining it
            (relative to `package`, e.g. `".video_qa_model"`).

    Example (in a package's `__init__.py`):

    ```python
    __getattr__, __dir__ = mmzoo.lazy_attributes(__name__, {"VideoQAModel": ".video_qa_model"})
    ```
    """

    def __getattr__(name):
        if name in exports:
            module = importlib.import_module(exports[name], package)
            # A submodule exported under its own name is the module itself.
            return module if exports[name] == "." + name else getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__


def lazy_module(name):
    """A stand-in for module `name` that imports it on first attribute access.

    The model code runs on any Keras backend, but the preprocessors it
    imports use TensorFlow (tokenizers and image decoding run in `tf.data`
    and SavedModels). With `tf = mmzoo.lazy_module("tensorflow")` a module
    that only uses `tf` inside functions imports without TensorFlow, so
    models build and train on the JAX backend of a machine that lacks it.

    Example:

    ```python
    tf = mmzoo.lazy_module("tensorflow")
    tf.constant([1, 2])  # TensorFlow is imported here
    ```
    """
    import types

    module = []

    class _LazyModule(types.ModuleType):
        def __getattr__(self, attribute):
            if not module:
                module.append(importlib.import_module(name))
            return getattr(module[0], attribute)

    return _LazyModule(name)


def import_all():
    """Imports every model, encoder and layer module, registering their Keras classes.

    `import mmzoo` does it, except in the `mmzoo` command, whose commands call
    it before loading a `.keras` file.
    """
    for name in _EAGER:
        package = importlib.import_module(f"mmzoo.{name}")
        for attribute in getattr(package, "__all__", ()):
            getattr(package, attribute)  # a lazy package imports the defining module


def _started_as_the_command():
    """Whether this process is the `mmzoo` command (or `python -m mmzoo.cli`)."""
    if sys.argv and os.path.basename(sys.argv[0]) == "mmzoo":
        return True
    return list(getattr(sys, "orig_argv", [])[1:3]) == ["-m", "mmzoo.cli"]


if not _started_as_the_command():
    import_all()


def __getattr__(name):
    if name in _EAGER + _LAZY:
        return importlib.import_module(f"mmzoo.{name}")
    raise AttributeError(f"module 'mmzoo' has no attribute {name!r}")
