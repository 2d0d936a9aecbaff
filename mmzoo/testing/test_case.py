"""`mmzoo.testing.TestCase`: shared checks for layers, models, exports and data ops.

Every mmzoo test uses these helpers, and they are public so that users who write
their own layers or encoders for mmzoo can hold them to the same contract:

* `run_layer_test`: config round trip, symbolic and eager calls with the expected
  output shape, one XLA-compiled training step, and a `mixed_bfloat16` run.
* `run_model_saving_test`: `.keras` save and reload with `safe_mode=True`.
* `run_export_test`: SavedModel export, reloaded and called in a separate Python
  process that imports only `tensorflow` and `tensorflow_text`.
* `run_dataset_op_test`: a per-example `dict -> dict` op gives the same result
  eagerly, inside `tf.data.Dataset.map` unbatched, and (optionally) batched.
"""

import json
import os
import select
import subprocess
import sys
import tempfile
import textwrap

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from keras import tree


def _to_numpy(x):
    if isinstance(x, (str, bytes)):
        return np.asarray(x)
    if isinstance(x, tf.Tensor) or isinstance(x, tf.Variable):
        return x.numpy()
    return np.asarray(ops.convert_to_numpy(x))


def _is_shape(x):
    return isinstance(x, (tuple, list)) and all(
        d is None or isinstance(d, (int, np.integer)) for d in x
    )


def _map_shapes(fn, shapes):
    """Applies `fn` to every shape tuple of a nested dict/list of shapes."""
    if _is_shape(shapes):
        return fn(shapes)
    if isinstance(shapes, dict):
        return {k: _map_shapes(fn, v) for k, v in shapes.items()}
    return type(shapes)(_map_shapes(fn, v) for v in shapes)


def _shapes(x):
    """Shape tuples of a nested structure of arrays (shape tuples pass through)."""
    if _is_shape(x):
        return tuple(x)
    if isinstance(x, dict):
        return {k: _shapes(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_shapes(v) for v in x)
    return tuple(x.shape)


def _symbolic_inputs(input_data):
    """keras.Input tensors matching `input_data` (batch dimension left free)."""

    def make(x):
        x = np.asarray(x)
        return keras.Input(shape=x.shape[1:], dtype=str(x.dtype))

    if isinstance(input_data, dict):
        return {
            k: keras.Input(
                shape=np.asarray(v).shape[1:], dtype=str(np.asarray(v).dtype), name=k
            )
            for k, v in input_data.items()
        }
    return tree.map_structure(make, input_data)


def _call(layer, inputs, **kwargs):
    """Dicts are keyword arguments, anything else is the first argument."""
    if isinstance(inputs, dict):
        return layer(**inputs, **kwargs)
    return layer(inputs, **kwargs)


# The process that serves `run_export_test`'s SavedModels: it reads one JSON
# request per line on stdin and answers one JSON line on the original stdout
# (anything else written to stdout goes to stderr).
_SERVING_SCRIPT = textwrap.dedent(
    """
    import gc, json, os, sys, traceback
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the tf-text ops

    for line in sys.stdin:
        request = json.loads(line)
        try:
            loaded = tf.saved_model.load(request["path"])
            fn = loaded.signatures[request["endpoint"]]
            # Both files are written by the test and this process only, so
            # pickled object arrays (binary strings) are safe to load.
            with np.load(request["inputs"], allow_pickle=True) as data:
                outputs = fn(**{k: tf.constant(data[k]) for k in data.files})
            np.savez(request["outputs"], **{k: v.numpy() for k, v in outputs.items()})
            # TensorFlow may load keras itself; mmzoo and keras-hub must not be needed.
            bad = [m for m in ("mmzoo", "keras_hub") if m in sys.modules]
            if bad:
                raise RuntimeError("imported in the serving process: " + ", ".join(bad))
            reply = {"error": None}
        except Exception:
            reply = {"error": traceback.format_exc()}
        loaded = fn = outputs = None
        gc.collect()
        replies.write(json.dumps(reply) + "\\n")
        replies.flush()
    """
)


class _ServingProcess:
    """A Python process with only `tensorflow` and `tensorflow_text` imported."""

    def __init__(self):
        self._process = None
        self._log = None

    def _start(self):
        self._log = tempfile.TemporaryFile(mode="w+")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SERVING_SCRIPT],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            cwd=tempfile.gettempdir(), env=env, text=True,
        )

    def serve(self, path, endpoint, inputs, outputs, timeout=600):
        """Runs one request; returns None, or the error's text."""
        if self._process is None or self._process.poll() is not None:
            self._start()
        request = {"path": path, "endpoint": endpoint, "inputs": inputs, "outputs": outputs}
        try:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            ready, _, _ = select.select([self._process.stdout], [], [], timeout)
            line = self._process.stdout.readline() if ready else ""
        except BrokenPipeError:
            line = ""
        if line:
            return json.loads(line)["error"]
        # Exited or timed out: report its stderr; the next request starts another.
        self._process.kill()
        self._process.wait()
        self._log.seek(0)
        return f"no answer within {timeout} s or it exited:\n{self._log.read()[-4000:]}"


_SERVING = None


def _serving_process():
    global _SERVING
    if _SERVING is None:
        _SERVING = _ServingProcess()
    return _SERVING


class TestCase(tf.test.TestCase):
    """Base class for mmzoo tests, with the `run_*_test` helpers.

    Example:

    ```python
    from mmzoo.testing import TestCase
    from mmzoo.layers import ProjectionHead

    class ProjectionHeadTest(TestCase):
        def test_layer_basics(self):
            self.run_layer_test(
                cls=ProjectionHead,
                init_kwargs={"projection_dim": 4},
                input_data=np.ones((2, 8), "float32"),
                expected_output_shape=(2, 4),
            )
    ```
    """

    # tf.test.TestCase's deprecated `test_session` context manager is not a
    # test; hide it from pytest's collection.
    test_session = None

    def setUp(self):
        super().setUp()
        keras.config.set_dtype_policy("float32")
        keras.utils.set_random_seed(1337)

    def tearDown(self):
        keras.config.set_dtype_policy("float32")
        super().tearDown()

    def get_temp_dir(self):
        path = tempfile.mkdtemp(dir=super().get_temp_dir())
        return path

    # ------------------------------------------------------------------ utils
    def assertAllCloseNested(self, a, b, atol=1e-6, rtol=1e-6, msg=None):
        """`assertAllClose` over matching nested structures (dicts, lists)."""
        tree.assert_same_structure(a, b)
        for x, y in zip(tree.flatten(a), tree.flatten(b)):
            x, y = _to_numpy(x), _to_numpy(y)
            if x.dtype.kind in "SUO":
                self.assertAllEqual(x, y, msg=msg)
            else:
                self.assertAllClose(
                    x.astype("float64"), y.astype("float64"), atol=atol, rtol=rtol, msg=msg
                )

    def assertShapesEqual(self, outputs, expected_shapes, msg=None):
        """Each output's shape equals the expected one (None matches anything).

        `outputs` may hold tensors or shape tuples.
        """
        if _is_shape(expected_shapes):
            actual = _shapes(outputs)
            expected = tuple(expected_shapes)
            self.assertTrue(_is_shape(actual), msg=f"expected one output, got {actual}")
            self.assertEqual(len(actual), len(expected), msg=msg or f"{actual} != {expected}")
            for a, e in zip(actual, expected):
                if a is not None and e is not None:
                    self.assertEqual(a, e, msg=msg or f"shape {actual} != {expected}")
            return
        if isinstance(expected_shapes, dict):
            self.assertEqual(set(outputs.keys()), set(expected_shapes.keys()), msg=msg)
            for key in expected_shapes:
                self.assertShapesEqual(outputs[key], expected_shapes[key], msg=msg)
            return
        if isinstance(expected_shapes, (list, tuple)):
            self.assertEqual(len(outputs), len(expected_shapes), msg=msg)
            for out, shape in zip(outputs, expected_shapes):
                self.assertShapesEqual(out, shape, msg=msg)
            return
        raise TypeError(f"Unsupported expected shape structure: {expected_shapes}")

    # ------------------------------------------------------------ layer test
    def run_layer_test(
        self,
        cls,
        init_kwargs,
        input_data,
        expected_output_shape,
        expected_num_trainable_weights=None,
        run_training_check=True,
        run_mixed_precision_check=True,
        call_kwargs=None,
    ):
        """Checks the mmzoo layer contract.

        Args:
            cls: the layer class.
            init_kwargs: dict. Constructor arguments.
            input_data: an array, a list of arrays, or a dict of arrays. A dict is
                passed as keyword arguments to `call` (e.g. `{"inputs": x,
                "padding_mask": m}`); anything else as the first argument.
            expected_output_shape: tuple (or nested tuples matching the output
                structure) with the batch dimension included.
            expected_num_trainable_weights: int or None. Checked after build.
            run_training_check: bool. Fit one step with `jit_compile=True` and
                check that every trainable weight received a gradient.
            run_mixed_precision_check: bool. Build with `dtype="mixed_bfloat16"`
                and check float32 variables and bfloat16 outputs.
            call_kwargs: dict or None. Extra non-tensor `call` arguments.
        """
        call_kwargs = call_kwargs or {}

        # Config round trip.
        layer = cls(**init_kwargs)
        config = layer.get_config()
        for key, value in init_kwargs.items():
            self.assertIn(key, config, msg=f"get_config() lacks `{key}`")
            if isinstance(value, (bool, int, float, str, tuple, list)) or value is None:
                normalize = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
                self.assertEqual(
                    normalize(config[key]), normalize(value),
                    msg=f"get_config()[{key!r}] is {config[key]!r}, constructed with {value!r}",
                )
        revived = cls.from_config(config)
        self.assertEqual(revived.get_config(), config)
        json.dumps(keras.saving.serialize_keras_object(layer))  # JSON-serializable

        # Symbolic call.
        symbolic_inputs = _symbolic_inputs(input_data)
        symbolic_out = _call(layer, symbolic_inputs, **call_kwargs)
        self.assertShapesEqual(symbolic_out, expected_output_shape)
        # compute_output_shape, called the Keras way: `<call argument>_shape`.
        if isinstance(input_data, dict):
            shapes = {f"{k}_shape": _shapes(v) for k, v in input_data.items()}
            computed = layer.compute_output_shape(**shapes)
        else:
            computed = layer.compute_output_shape(_shapes(input_data))
        self.assertShapesEqual(computed, expected_output_shape)
        if expected_num_trainable_weights is not None:
            self.assertLen(layer.trainable_weights, expected_num_trainable_weights)

        # Eager call on a fresh layer.
        layer = cls(**init_kwargs)
        eager_out = _call(layer, input_data, **call_kwargs)
        self.assertShapesEqual(eager_out, expected_output_shape)
        for x in tree.flatten(eager_out):
            self.assertTrue(np.all(np.isfinite(_to_numpy(x).astype("float64"))))

        if run_training_check:
            self._run_training_step(cls, init_kwargs, input_data, call_kwargs)
        if run_mixed_precision_check:
            self._run_mixed_precision_check(cls, init_kwargs, input_data, call_kwargs)
        return eager_out

    def _run_training_step(self, cls, init_kwargs, input_data, call_kwargs):
        layer = cls(**init_kwargs)
        inputs = _symbolic_inputs(input_data)
        outputs = _call(layer, inputs, **call_kwargs)
        model = keras.Model(inputs, outputs)
        before = [np.array(_to_numpy(w)) for w in layer.trainable_weights]
        self.assertNotEmpty(before, msg="layer has no trainable weights to train")
        targets = tree.map_structure(
            lambda y: np.ones(tuple(y.shape), "float32"),
            _call(layer, input_data, **call_kwargs),
        )
        model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse", jit_compile=True)
        x = dict(input_data) if isinstance(input_data, dict) else input_data
        history = model.fit(x, targets, batch_size=len(tree.flatten(input_data)[0]),
                            epochs=1, verbose=0)
        self.assertTrue(np.isfinite(history.history["loss"][0]))
        after = [_to_numpy(w) for w in layer.trainable_weights]
        unchanged = [
            w.path for w, b, a in zip(layer.trainable_weights, before, after)
            if np.array_equal(b, a)
        ]
        self.assertEmpty(unchanged, msg=f"weights without gradient: {unchanged}")

    def _run_mixed_precision_check(self, cls, init_kwargs, input_data, call_kwargs):
        layer = cls(**{**init_kwargs, "dtype": "mixed_bfloat16"})
        outputs = _call(layer, input_data, **call_kwargs)
        for w in layer.weights:
            self.assertEqual(w.dtype, "float32", msg=f"{w.path} is {w.dtype}")
        for x in tree.flatten(outputs):
            dtype = keras.backend.standardize_dtype(x.dtype)
            if "float" in dtype:
                self.assertEqual(dtype, "bfloat16")

    # ------------------------------------------------------ model builder
    def run_model_builder_test(
        self,
        builder,
        init_kwargs,
        input_data,
        expected_output_shape,
        run_training_check=True,
        run_mixed_precision_check=True,
    ):
        """Checks a `build_*` function returning a functional model.

        Builds the model, checks symbolic and eager output shapes, fits one
        step with `jit_compile=True` (every trainable weight must move), and
        builds it again with `dtype="mixed_bfloat16"` (float32 variables,
        bfloat16 float outputs).

        Args:
            builder: callable returning a `keras.Model` from `**init_kwargs`.
            init_kwargs: dict. Builder arguments (tiny sizes).
            input_data: what the model is called with.
            expected_output_shape: shape tuple, or dict/list of them matching
                the outputs, batch dimension included.
            run_training_check: bool.
            run_mixed_precision_check: bool.

        Returns:
            The model built from `init_kwargs`.
        """
        model = builder(**init_kwargs)
        self.assertIsInstance(model, keras.Model)
        # Symbolic outputs: everything but the free batch dimension must match.
        self.assertShapesEqual(
            model.output, _map_shapes(lambda s: (None,) + tuple(s[1:]), expected_output_shape)
        )
        outputs = model(input_data, training=False)
        self.assertShapesEqual(outputs, expected_output_shape)
        for x in tree.flatten(outputs):
            self.assertTrue(np.all(np.isfinite(_to_numpy(x).astype("float64"))))

        if run_training_check:
            trained = builder(**init_kwargs)
            before = [np.array(_to_numpy(w)) for w in trained.trainable_weights]
            targets = tree.map_structure(
                lambda y: np.ones(tuple(y.shape), "float32"), outputs
            )
            trained.compile(
                optimizer=keras.optimizers.SGD(1.0), loss="mse", jit_compile=True
            )
            batch_size = len(tree.flatten(input_data)[0])
            history = trained.fit(
                input_data, targets, batch_size=batch_size, epochs=1, verbose=0
            )
            self.assertTrue(np.isfinite(history.history["loss"][0]))
            unchanged = [
                w.path
                for w, b in zip(trained.trainable_weights, before)
                if np.array_equal(b, _to_numpy(w))
            ]
            self.assertEmpty(unchanged, msg=f"weights without gradient: {unchanged}")

        if run_mixed_precision_check:
            mixed = builder(**{**init_kwargs, "dtype": "mixed_bfloat16"})
            for w in mixed.weights:
                self.assertEqual(w.dtype, "float32", msg=f"{w.path} is {w.dtype}")
            for x in tree.flatten(mixed(input_data, training=False)):
                dtype = keras.backend.standardize_dtype(x.dtype)
                if "float" in dtype:
                    self.assertEqual(dtype, "bfloat16")
        return model

    # ------------------------------------------------------- model saving
    def run_model_saving_test(self, model, input_data, atol=1e-6, rtol=1e-6):
        """`.keras` save and reload with `safe_mode=True`; same outputs.

        Args:
            model: a built Keras model.
            input_data: what `model` is called with.

        Returns:
            The reloaded model.
        """
        expected = model(input_data, training=False)
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
        self.assertIsInstance(restored, model.__class__)
        self.assertEqual(
            sorted(w.path for w in model.weights), sorted(w.path for w in restored.weights)
        )
        actual = restored(input_data, training=False)
        self.assertAllCloseNested(expected, actual, atol=atol, rtol=rtol)
        return restored

    # ------------------------------------------------------------- export
    def run_export_test(
        self,
        model=None,
        input_data=None,
        export_fn=None,
        endpoint="serve",
        expected_output=None,
        atol=1e-5,
        rtol=1e-5,
    ):
        """SavedModel export, reloaded and called in a process without mmzoo.

        The other process imports only `tensorflow` and `tensorflow_text` (so a
        tokenizer inside the graph works), loads the SavedModel, calls the
        signature `endpoint` with `input_data` as keyword arguments, and sends
        the outputs back; it also checks that `mmzoo` and `keras_hub` were never
        imported there. It is started once per test process and serves every
        export test of that process in turn (started again if it exits), so
        that each test does not pay for importing TensorFlow again.

        Args:
            model: a Keras model, exported with `model.export(...)` when
                `export_fn` is None. Its outputs on `input_data` are the
                expected outputs when `expected_output` is None.
            input_data: dict of arrays (numeric or bytes), the signature's
                keyword arguments. For `model.export`, the keys are the
                model's input names.
            export_fn: callable `export_fn(path)` writing the SavedModel, for
                the `mmzoo.export` functions.
            endpoint: str. The signature to call.
            expected_output: array or dict of arrays, or None.

        Returns:
            dict of the outputs computed in the child process.
        """
        path = os.path.join(self.get_temp_dir(), "saved_model")
        if export_fn is None:
            model.export(path, format="tf_saved_model", verbose=False)
        else:
            export_fn(path)
        if expected_output is None:
            model_inputs = input_data
            if not isinstance(model.input, dict) and len(model.inputs) == 1:
                (model_inputs,) = input_data.values()
            expected_output = model(model_inputs, training=False)

        io_dir = self.get_temp_dir()
        in_file = os.path.join(io_dir, "inputs.npz")
        out_file = os.path.join(io_dir, "outputs.npz")
        np.savez(in_file, **{k: _to_numpy(v) for k, v in input_data.items()})
        error = _serving_process().serve(path, endpoint, in_file, out_file)
        if error is not None:
            self.fail(f"serving process failed:\n{error}")
        with np.load(out_file, allow_pickle=True) as f:
            served = {k: f[k] for k in f.files}
        if isinstance(expected_output, dict):
            self.assertEqual(set(served), set(expected_output))
            for key, value in expected_output.items():
                self.assertAllCloseNested(value, served[key], atol=atol, rtol=rtol)
        else:
            self.assertLen(served, 1, msg=f"outputs: {sorted(served)}")
            self.assertAllCloseNested(
                expected_output, next(iter(served.values())), atol=atol, rtol=rtol
            )
        return served

    # --------------------------------------------------------- dataset op
    def run_dataset_op_test(self, op, input_data, batched=True, atol=1e-6, rtol=1e-6):
        """A `dict -> dict` op gives the same result eagerly and in `tf.data`.

        Args:
            op: callable taking and returning a dict of tensors for one example
                (and, when `batched`, for a batch of examples).
            input_data: dict of arrays whose first dimension indexes examples.
            batched: bool. Also check `Dataset.batch(n).map(op)` against the
                stacked eager results.

        Returns:
            list of the eager per-example outputs (dicts of numpy arrays).
        """
        num_examples = len(next(iter(input_data.values())))
        examples = [
            {k: tf.constant(np.asarray(v)[i]) for k, v in input_data.items()}
            for i in range(num_examples)
        ]
        eager = [tree.map_structure(_to_numpy, op(e)) for e in examples]

        ds = tf.data.Dataset.from_tensor_slices(input_data).map(op)
        mapped = [tree.map_structure(_to_numpy, e) for e in ds.as_numpy_iterator()]
        self.assertLen(mapped, num_examples)
        for e, m in zip(eager, mapped):
            self.assertAllCloseNested(e, m, atol=atol, rtol=rtol)

        if batched:
            ds = tf.data.Dataset.from_tensor_slices(input_data).batch(num_examples).map(op)
            (batch,) = list(ds.as_numpy_iterator())
            stacked = tree.map_structure(lambda *xs: np.stack(xs), *eager)
            self.assertAllCloseNested(stacked, batch, atol=atol, rtol=rtol)
        return eager
