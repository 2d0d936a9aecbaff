"""What `DualEncoder` and `TwoViewEncoder` share: tower checks, projection,
contrastive head, the whole-output loss and the batched `encode_*` helpers."""

import keras
import numpy as np
from keras import ops

from mmzoo.data.inputs import prepare_pixels
from mmzoo.data.inputs import run_in_batches
from mmzoo.data.inputs import token_vocabulary_size
from mmzoo.data.preprocessing import ImageConverter
from mmzoo.data.preprocessing import VideoConverter
from mmzoo.layers import ContrastiveHead
from mmzoo.layers import ProjectionHead
from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.validation import check_rate
from mmzoo.losses import gather_from_replicas
from mmzoo.models.dual_encoder.dual_encoder_preprocessor import DualEncoderPreprocessor
from mmzoo.models.dual_encoder.momentum import FeatureQueue
from mmzoo.models.dual_encoder.momentum import check_momentum
from mmzoo.models.dual_encoder.momentum import momentum_copy
from mmzoo.models.dual_encoder.momentum import moving_average_pairs
from mmzoo.models.preprocessing import attach_preprocessor
from mmzoo.models.compression import CompressionMixin
from mmzoo.models.saving import model_config
from mmzoo.models.saving import model_from_config

# Constructor arguments of the projection and head, common to both classes.
HEAD_ARGUMENTS = (
    "projection_dim",
    "projection_intermediate_dim",
    "projection_use_bias",
    "initial_temperature",
    "max_logit_scale",
    "trainable_temperature",
    "use_bias",
    "initial_bias",
    "dropout_rate",
)


@keras.saving.register_keras_serializable(package="mmzoo")
class DualEncoderHead(ContrastiveHead):
    """The `ContrastiveHead` of a dual encoder, as graph outputs.

    Instead of the `(batch, batch)` logits of one device, it returns what a
    contrastive loss needs to score embeddings against those of every replica:
    both L2-normalised embeddings, and the clamped `logit_scale` (and
    `logit_bias` when `use_bias`) repeated once per example, so that every
    output has a batch axis (`predict` concatenates outputs batch by batch).
    `pair_logits` gives the `ContrastiveHead` logits.

    Args:
        **kwargs: `ContrastiveHead` arguments (`initial_temperature`,
            `max_logit_scale`, `use_bias`, `initial_bias`,
            `trainable_temperature`) and base layer arguments.

    Call arguments:
        embeddings: `(batch_size, dim)`.
        other_embeddings: `(batch_size, dim)`.

    Returns:
        dict with `embeddings`, `other_embeddings` `(batch_size, dim)`,
        `logit_scale` `(batch_size,)` and, with `use_bias`, `logit_bias`
        `(batch_size,)`.

    Example:

    >>> head = mmzoo.models.dual_encoder.DualEncoderHead()
    >>> sorted(head(np.ones((4, 8)), np.ones((4, 8))))
    ['embeddings', 'logit_scale', 'other_embeddings']
    """

    def call(self, embeddings, other_embeddings):
        a = self.normalize(embeddings)
        b = self.normalize(other_embeddings)
        ones = ops.ones_like(a[:, 0])
        outputs = {
            "embeddings": a,
            "other_embeddings": b,
            "logit_scale": ones * ops.cast(self.logit_scale, a.dtype),
        }
        if self.logit_bias is not None:
            outputs["logit_bias"] = ones * ops.cast(self.logit_bias, a.dtype)
        return outputs

    def pair_logits(self, embeddings, other_embeddings):
        """`logit_scale * a @ b.T + logit_bias`, `(batch_a, batch_b)`."""
        return super().call(embeddings, other_embeddings)

    def compute_output_shape(self, embeddings_shape, other_embeddings_shape):
        shapes = {
            "embeddings": tuple(embeddings_shape),
            "other_embeddings": tuple(other_embeddings_shape),
            "logit_scale": (embeddings_shape[0],),
        }
        if self.use_bias:
            shapes["logit_bias"] = (embeddings_shape[0],)
        return shapes


def tower_modality(encoder, argument):
    """`"image"`, `"video"` or `"text"`, from the tower's inputs."""
    if isinstance(encoder.input, dict):
        if "token_ids" in encoder.input:
            return "text"
        raise ValueError(
            f"`{argument}` takes a dict without `token_ids`; text towers take "
            f"`token_ids` and `padding_mask`. Received: inputs {sorted(encoder.input)}"
        )
    if len(encoder.inputs) != 1:
        raise ValueError(
            f"`{argument}` must take one images/videos tensor or a text dict. "
            f"Received: {len(encoder.inputs)} inputs"
        )
    rank = len(encoder.inputs[0].shape)
    if rank == 4:
        return "image"
    if rank == 5:
        return "video"
    raise ValueError(
        f"`{argument}` must take images (batch, height, width, channels), videos "
        "(batch, frames, height, width, channels) or text. Received: input shape "
        f"{encoder.inputs[0].shape}"
    )


def pooled_features(encoder, outputs, argument):
    """The tower's pooled `(batch, dim)` features."""
    if isinstance(outputs, dict):
        if "pooled_output" not in outputs:
            raise ValueError(
                f"`{argument}` returns a dict without `pooled_output` (every mmzoo "
                f"encoder has one). Received: outputs {sorted(outputs)}"
            )
        outputs = outputs["pooled_output"]
    if len(outputs.shape) != 2:
        raise ValueError(
            f"`{argument}` must return pooled features (batch_size, dim). "
            f"Received: output shape {outputs.shape}"
        )
    return outputs


def tower_input_names(encoder, prefix):
    """The model's input names for a tower: `{tower key: name}` for a text
    tower, one name (`prefix + "images"` or `"videos"`) for a visual one."""
    if isinstance(encoder.input, dict):
        return {key: prefix + key for key in encoder.input}
    return prefix + ("images" if len(encoder.inputs[0].shape) == 4 else "videos")


def tower_inputs(encoder, prefix):
    """Fresh `keras.Input`s for a tower, named by `tower_input_names`."""
    names = tower_input_names(encoder, prefix)
    if isinstance(names, dict):
        return {
            key: keras.Input(shape=tuple(spec.shape[1:]), dtype=spec.dtype, name=names[key])
            for key, spec in encoder.input.items()
        }
    spec = encoder.inputs[0]
    return keras.Input(shape=tuple(spec.shape[1:]), dtype=spec.dtype, name=names)


def input_dict(inputs):
    """The model's `{name: keras.Input}` from one tower's inputs."""
    if isinstance(inputs, dict):
        return {t.name: t for t in inputs.values()}
    return {inputs.name: inputs}


def check_head_arguments(projection_dim, projection_intermediate_dim, dropout_rate):
    """The checked values, as plain Python numbers (NumPy scalars are
    accepted) for a JSON-clean config. `projection_dim=None` (no projection)
    takes no `projection_intermediate_dim`."""
    if projection_dim is None:
        if projection_intermediate_dim is not None:
            raise ValueError(
                "`projection_dim=None` means no projection (the towers' pooled outputs "
                "are the embeddings), so it takes no `projection_intermediate_dim`. "
                f"Received: projection_intermediate_dim={projection_intermediate_dim!r}"
            )
        return None, None, check_rate("dropout_rate", dropout_rate)
    projection_dim = check_positive_int("projection_dim", projection_dim)
    if projection_intermediate_dim is not None:
        projection_intermediate_dim = check_positive_int(
            "projection_intermediate_dim", projection_intermediate_dim
        )
    return projection_dim, projection_intermediate_dim, check_rate("dropout_rate", dropout_rate)


def check_tower(encoder, argument):
    if not isinstance(encoder, keras.Model):
        raise ValueError(
            f"`{argument}` must be a keras.Model. Received: {argument}={encoder!r}"
        )


def check_different_names(encoder, other, arguments):
    if encoder.name == other.name:
        raise ValueError(
            f"`{arguments[0]}` and `{arguments[1]}` must have different names (layers "
            "are matched by name when saving); pass `name=` to one of the encoder "
            f"builders. Received: both named {encoder.name!r}"
        )


def describe_tower(encoder):
    """`"an encoder named 'x' taking images (None, 16, 16, 3)"`, for messages."""
    if isinstance(encoder.input, dict):
        taking = f"inputs {sorted(encoder.input)}"
    else:
        spec = encoder.inputs[0]
        kind = {4: "images", 5: "videos"}.get(len(spec.shape), "inputs")
        taking = f"{kind} {tuple(spec.shape)}"
    return f"an encoder named {encoder.name!r} taking {taking}"


def attach_dual_encoder_preprocessor(
    preprocessor, visual_encoder, text_encoder=None, second_view_encoder=None,
    arguments=("image_encoder", "text_encoder"),
):
    """Checks `preprocessor` against the towers and completes it (length, converter).

    `text_encoder` is the text tower of a `DualEncoder`; `second_view_encoder`
    the second visual tower of a `TwoViewEncoder` (None when shared).
    """
    if preprocessor is None:
        return None
    shape = tuple(visual_encoder.inputs[0].shape[1:])
    is_video = len(shape) == 4
    vocabulary_size, expected = None, {}
    if isinstance(preprocessor, DualEncoderPreprocessor):
        if text_encoder is not None:
            vocabulary_size = token_vocabulary_size(text_encoder)
            length = text_encoder.input["token_ids"].shape[1]
            if length is not None:  # KerasHub towers take any length
                expected["sequence_length"] = int(length)
            # A BERT-style tower (KerasHub's BertBackbone) takes segment
            # ids: the pipelines and exports then make them (one segment).
            preprocessor.return_segment_ids = "segment_ids" in text_encoder.input
        elif preprocessor.tokenizer is not None:
            raise ValueError(
                "A two-view model (no text tower) takes a preprocessor without a "
                f"tokenizer. Received: preprocessor.tokenizer={preprocessor.tokenizer!r}"
            )
        elif second_view_encoder is not None:
            other = tuple(second_view_encoder.inputs[0].shape[1:])
            if other != shape:
                raise ValueError(
                    "With a preprocessor, both views go through its one converter, so "
                    "the two towers must take the same input shape. Received: "
                    f"{arguments[0]} input {shape}, {arguments[1]} input {other}"
                )
        have, want = (
            ("image_converter", "video_converter") if is_video
            else ("video_converter", "image_converter")
        )
        if getattr(preprocessor, have) is not None:
            raise ValueError(
                f"The image tower takes {'videos' if is_video else 'images'}, so the "
                f"preprocessor needs a `{want}`. Received: {have}={getattr(preprocessor, have)!r}"
            )
        if preprocessor.converter is None:
            converter = (
                VideoConverter(shape[0], shape[1:], name="video_converter") if is_video
                else ImageConverter(shape, name="image_converter")
            )
            setattr(preprocessor, want, converter)
        expected["image_shape"] = shape[-3:]
        if is_video:
            expected["num_frames"] = shape[0]
    return attach_preprocessor(
        preprocessor, DualEncoderPreprocessor, vocabulary_size, **expected
    )


def _unique(layers):
    """`layers` without repeats, in order (a tower shared by two views)."""
    return list({id(layer): layer for layer in layers}.values())


class _MomentumView:
    """One embedding of the momentum encoder: its name, tower and projection
    copies, and where its inputs are in the model's (a plain object, so that
    Keras does not track the copies twice)."""

    def __init__(self, name, tower, projection, input_names, argument):
        self.name = name
        self.tower = tower
        self.projection = projection
        self.input_names = input_names  # from `tower_input_names`
        self.argument = argument

    def inputs(self, inputs):
        if isinstance(self.input_names, dict):
            return {key: inputs[name] for key, name in self.input_names.items()}
        return inputs[self.input_names]


class ContrastiveEncoder(CompressionMixin, keras.Model):
    """Base of `DualEncoder` and `TwoViewEncoder`: two towers, projections and a
    `DualEncoderHead`, wired by the subclass into a functional graph.

    Holds what does not depend on the tower pair: the projection and head
    layers, their config, `compute_loss`, and the batched, compiled
    `encode_*` plumbing. Subclasses call `_make_projection` and
    `_make_head` before `super().__init__(inputs, outputs)`, then
    `_set_head_config` and `_set_momentum`.
    """

    def _make_projection(self, name, projection_dim, projection_intermediate_dim,
                         dropout_rate, use_bias, dtype):
        if projection_dim is None:  # the towers' pooled outputs are the embeddings
            return keras.layers.Identity(name=name)
        return ProjectionHead(
            projection_dim,
            intermediate_dim=projection_intermediate_dim,
            dropout_rate=dropout_rate,
            use_bias=use_bias,
            dtype=dtype,
            name=name,
        )

    def _embedding_dim(self, projection_dim, features, arguments):
        """The embedding size: `projection_dim`, or without a projection the
        towers' pooled width, which must then be the same for both."""
        if projection_dim is not None:
            return projection_dim
        widths = [int(f.shape[-1]) for f in features]
        if widths[0] != widths[1]:
            raise ValueError(
                "Without a projection (`projection_dim=None`) both towers' pooled "
                "outputs are the embeddings and must have the same size. Received: "
                f"{arguments[0]} pooled size {widths[0]}, {arguments[1]} pooled size "
                f"{widths[1]}"
            )
        return widths[0]

    def _make_head(self, initial_temperature, max_logit_scale, use_bias, initial_bias,
                   trainable_temperature):
        # Normalisation and logits in float32 whatever the compute dtype.
        return DualEncoderHead(
            initial_temperature=initial_temperature,
            max_logit_scale=max_logit_scale,
            use_bias=use_bias,
            initial_bias=initial_bias,
            trainable_temperature=trainable_temperature,
            dtype="float32",
            name="contrastive_head",
        )

    def _head_outputs(self, features, other_features, keys):
        """The graph outputs: both embeddings under `keys`, `logit_scale` (and
        `logit_bias`)."""
        outputs = self.head(features, other_features)
        renamed = {
            keys[0]: outputs.pop("embeddings"),
            keys[1]: outputs.pop("other_embeddings"),
        }
        return {**renamed, **outputs}

    def _set_head_config(self, **values):
        for name in HEAD_ARGUMENTS:
            setattr(self, name, values[name])
        self._encode_functions = {}

    def _model_config(self, **fields):
        head = {name: getattr(self, name) for name in HEAD_ARGUMENTS}
        if isinstance(self.image_projection, keras.layers.Identity):
            head["projection_dim"] = None  # no projection
        return model_config(
            self,
            **head,
            momentum=self.momentum,
            queue_size=self.queue_size,
            **fields,
        )

    # -------------------------------------------------- momentum encoder
    def _set_momentum(self, momentum, queue_size, views):
        """Makes the momentum encoder and feature queue (see `momentum.py`).

        `views`: `(name, tower, projection, input prefix, argument)` per
        embedding, `name` as in the output keys (`"image"` for
        `image_embeddings`); a tower or projection shared by two views gets
        one copy.
        """
        self.momentum, self.queue_size = check_momentum(momentum, queue_size)
        self._momentum_views = None
        self.feature_queue = None
        if self.momentum is None:
            return
        copies, plan = {}, []  # id(trained layer) -> (trained layer, copy)
        for name, tower, projection, prefix, argument in views:
            for layer in (tower, projection):
                if id(layer) not in copies:
                    copies[id(layer)] = (layer, momentum_copy(layer))
            plan.append(_MomentumView(
                name, copies[id(tower)][1], copies[id(projection)][1],
                tower_input_names(tower, prefix), argument,
            ))
        # Tracked (saved with the model, in checkpoints) as lists of layers.
        self.momentum_towers = _unique(view.tower for view in plan)
        self.momentum_projections = _unique(view.projection for view in plan)
        self._momentum_views = plan
        self._moving_average_pairs = moving_average_pairs(
            [copy for _, copy in copies.values()], [layer for layer, _ in copies.values()]
        )
        if self.queue_size:
            self.feature_queue = FeatureQueue(
                self.queue_size, self.projection_dim, [view.name for view in plan],
                name="feature_queue",
            )

    @property
    def has_momentum_encoder(self):
        """Whether training-mode calls update and use a momentum encoder
        (`mmzoo.training.Trainer` refuses cached accumulation then)."""
        return self.momentum is not None

    def call(self, inputs, training=None, mask=None, **kwargs):
        """The graph's outputs; in training mode with a momentum encoder, also
        `*_keys` and, with a queue, `*_queue` and `queue_mask` (see
        `mmzoo.losses.CLIPLoss`)."""
        outputs = super().call(inputs, training=training, mask=mask, **kwargs)
        if not training or getattr(self, "_momentum_views", None) is None:
            return outputs
        return {**outputs, **self._momentum_outputs(inputs)}

    def _momentum_outputs(self, inputs):
        """Moving-average update, keys of the batch, queue read then push.

        The copies' weights move towards the trained ones before the keys
        are computed (as MoCo and ALBEF do); the copies run in inference
        mode and no gradient flows through the keys. The queue is read
        before this batch's keys, gathered across replicas, are written.
        """
        for target, source in self._moving_average_pairs:
            target.assign(
                self.momentum * target + (1.0 - self.momentum) * ops.cast(source, target.dtype)
            )
        keys = {}
        for view in self._momentum_views:
            features = pooled_features(
                view.tower, view.tower(view.inputs(inputs), training=False), view.argument
            )
            embeddings = self.head.normalize(
                ops.cast(view.projection(features, training=False), "float32")
            )
            keys[view.name] = ops.stop_gradient(embeddings)
        outputs = {f"{name}_keys": value for name, value in keys.items()}
        if self.feature_queue is not None:
            outputs.update(self.feature_queue.read())
            self.feature_queue.push(
                {name: gather_from_replicas(value)[0] for name, value in keys.items()}
            )
        return outputs

    @classmethod
    def from_config(cls, config):
        return model_from_config(cls, config)

    # ------------------------------------------------------------- loss
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Gives whole-output losses (the `mmzoo.losses` contrastive ones) the dict.

        A loss whose `takes_output_dict` is True gets the model's whole output
        dict, and `y` may be None (datasets yielding inputs only). Any other
        `compile` loss goes through Keras's usual per-output handling.
        """
        if not getattr(self.loss, "takes_output_dict", False):
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        total = self.loss(y, y_pred, sample_weight)
        for extra in self.losses:  # regularisation, as Keras adds it
            total = total + self._aggregate_additional_loss(extra)
        return total

    # ------------------------------------------------------- embeddings
    def _embed(self, encoder, projection, inputs, training, argument):
        """Tower -> projection -> L2 normalisation, float32 `(batch, projection_dim)`."""
        features = pooled_features(encoder, encoder(inputs, training=training), argument)
        return self.head.normalize(ops.cast(projection(features), "float32"))

    def _prepare_pixels(self, name, pixels, encoder):
        if self.preprocessor is not None:
            return self.preprocessor.preprocess_images(pixels, name=name)
        expected = tuple(encoder.inputs[0].shape[1:])
        return prepare_pixels(name, pixels, expected, batch_name="n")

    def _pair_logits(self, named_embeddings):
        arrays = []
        for name, embeddings in named_embeddings:
            array = np.asarray(embeddings)
            if (
                array.ndim != 2
                or array.shape[1] != self.projection_dim
                or not np.issubdtype(array.dtype, np.number)
            ):
                raise ValueError(
                    f"`{name}` must be a float array (n, {self.projection_dim}) (the "
                    f"model's projection_dim). Received: {name} with dtype {array.dtype} "
                    f"and shape {array.shape}"
                )
            arrays.append(ops.convert_to_tensor(array.astype("float32")))
        return ops.convert_to_numpy(self.head.pair_logits(*arrays))

    def _run_batched(self, key, fn, inputs, batch_size):
        """`fn` over `inputs` in batches, compiled once per `key` (XLA, TF)."""
        if key not in self._encode_functions:
            if keras.config.backend() == "tensorflow":
                import tensorflow as tf  # compilation is backend-specific

                # No autograph: there is no tensor-dependent Python control flow.
                fn = tf.function(fn, jit_compile=True, autograph=False)
            self._encode_functions[key] = fn
        empty = np.zeros((0, self.projection_dim), "float32")
        return run_in_batches(
            self._encode_functions[key], (inputs,), batch_size, empty
        ).astype("float32")
