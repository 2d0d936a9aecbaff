import keras
import keras_hub
from keras import ops

from mmzoo.encoders.common import check_image_shape
from mmzoo.encoders.common import check_transformer_args
from mmzoo.encoders.common import pool_sequence
from mmzoo.layers import FactorisedAttentionBlock
from mmzoo.layers import TubeletEmbedding
from mmzoo.layers.transformer import transformer_block
from mmzoo.layers.validation import check_bool
from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.tubelet_embedding import _tubelet_size


def build_video_encoder(
    num_frames=16,
    image_shape=(224, 224, 3),
    tubelet_size=(2, 16, 16),
    frame_differences=False,
    num_layers=12,
    num_heads=12,
    hidden_dim=768,
    intermediate_dim=3072,
    dropout_rate=0.0,
    pooling="mean",
    layer_norm_epsilon=1e-6,
    name="video_encoder",
    dtype=None,
):
    """Builds a ViViT video tower with factorised space-time attention.

    Optional frame differences -> tubelet embedding (`TubeletEmbedding`) ->
    `num_layers` `FactorisedAttentionBlock`s (spatial attention within each
    time step, then temporal attention at each position; ViViT model 3) ->
    final layer norm.

    With `frame_differences=True` each frame also carries its difference to
    the previous frame as extra channels (`FrameDifferences`), so a moving
    object shows its leading and trailing edges inside every tubelet: the
    linear tubelet projection sees the motion directly instead of the
    attention layers having to compare tokens across time. On
    `shapes_video_qa`, with 2x4x4 tubelets, it takes the tiny model's
    direction questions from the majority baseline (0.28) to 0.81-0.86
    (benchmarks/README.md, "Video QA quality").

    Args:
        num_frames: int. Frames per clip; divisible by `tubelet_size[0]`.
        image_shape: tuple `(height, width, channels)` of each frame; height
            and width divisible by the tubelet's. Pixels are floats in [0, 1].
        tubelet_size: int or tuple `(frames, height, width)`.
        frame_differences: bool. Append `frame[t] - frame[t - 1]` (zeros for
            the first frame) to each frame's channels before the tubelet
            embedding.
        num_layers: int.
        num_heads: int. Must divide `hidden_dim`.
        hidden_dim: int.
        intermediate_dim: int.
        dropout_rate: float.
        pooling: `"mean"` or `"attention"`.
        layer_norm_epsilon: float.
        name: str.
        dtype: dtype or policy name; None for the global policy.

    Returns:
        A functional `keras.Model` with input `videos`
        `(batch_size, num_frames, height, width, channels)` and outputs
        `{"sequence_output": (batch_size, num_steps * num_patches, hidden_dim),
        "pooled_output": (batch_size, hidden_dim)}`, with
        `num_steps = num_frames // tubelet_size[0]` and tokens ordered time
        first.

    Example:

    ```python
    encoder = mmzoo.encoders.build_video_encoder(
        num_frames=8, image_shape=(32, 32, 3), tubelet_size=(2, 8, 8),
        num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64)
    encoder(np.zeros((2, 8, 32, 32, 3)))["sequence_output"].shape  # (2, 64, 32)
    # Small moving objects: 4x4 patches and frame differences.
    encoder = mmzoo.encoders.build_video_encoder(
        num_frames=8, image_shape=(32, 32, 3), tubelet_size=(2, 4, 4),
        frame_differences=True, num_layers=2, num_heads=2, hidden_dim=32,
        intermediate_dim=64)
    encoder(np.zeros((2, 8, 32, 32, 3)))["sequence_output"].shape  # (2, 256, 32)
    ```
    """
    num_frames = check_positive_int("num_frames", num_frames)
    image_shape = check_image_shape(image_shape)
    tubelet_size = _tubelet_size(tubelet_size)
    for label, dim, size in zip(
        ("num_frames", "image height", "image width"),
        (num_frames,) + image_shape[:2],
        tubelet_size,
    ):
        if dim % size:
            raise ValueError(
                f"`{label}` must be divisible by the matching entry of `tubelet_size` "
                f"{tubelet_size}. Received: {label}={dim}"
            )
    check_bool("frame_differences", frame_differences)
    check_transformer_args(num_layers, num_heads, hidden_dim, intermediate_dim, dropout_rate)
    num_steps = num_frames // tubelet_size[0]
    num_patches = (image_shape[0] // tubelet_size[1]) * (image_shape[1] // tubelet_size[2])

    # === Functional Model ===
    videos = keras.Input(shape=(num_frames,) + image_shape, name="videos")
    x = videos
    if frame_differences:
        x = FrameDifferences(dtype=dtype, name="frame_differences")(x)
    x = TubeletEmbedding(tubelet_size, hidden_dim, dtype=dtype, name="tubelet_embedding")(x)
    x = keras.layers.Dropout(dropout_rate, dtype=dtype, name="embedding_dropout")(x)
    for i in range(num_layers):
        x = FactorisedAttentionBlock(
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            dropout_rate=dropout_rate,
            layer_norm_epsilon=layer_norm_epsilon,
            dtype=dtype,
            name=f"factorised_block_{i}",
        )(x)
    x = keras.layers.LayerNormalization(
        epsilon=layer_norm_epsilon, dtype=dtype, name="final_norm"
    )(x)
    sequence = keras.layers.Reshape(
        (num_steps * num_patches, hidden_dim), dtype=dtype, name="flatten_tokens"
    )(x)
    pooled = pool_sequence(sequence, None, pooling, num_heads, dtype)
    return keras.Model(
        videos, {"sequence_output": sequence, "pooled_output": pooled}, name=name
    )


def build_frame_video_encoder(
    image_encoder,
    num_frames,
    frame_differences=False,
    num_layers=2,
    num_heads=8,
    intermediate_dim=2048,
    dropout_rate=0.0,
    pooling="mean",
    layer_norm_epsilon=1e-6,
    name="frame_video_encoder",
    dtype=None,
):
    """Builds a video tower from an image encoder applied to every frame.

    Frames are folded into the batch, encoded by `image_encoder` (any mmzoo
    image encoder, or a Keras model with a `pooled_output` or single 2D output,
    frozen or not), unfolded to `(batch, num_frames, dim)`, given a learned
    temporal position embedding, and mixed by a temporal Transformer. One
    image is a one-frame video, so `num_frames=1` gives an image tower with the
    same interface.

    With `frame_differences=True` each frame is stacked with its difference to
    the previous frame (`FrameDifferences`) before the image encoder, which
    then takes twice the video's channels (6 for RGB clips). A moving object
    shows its leading and trailing edges in the difference channels, so a
    per-frame convolution sees the direction of motion locally, where the
    pooled per-frame features alone keep little of where the object was. On
    `shapes_video_qa` this is what lets a per-frame conv tower answer
    direction questions (benchmarks/README.md, "Video QA quality").

    Args:
        image_encoder: `keras.Model` taking `(batch, height, width, channels)`;
            with `frame_differences=True`, `channels` is twice the video's.
        num_frames: int. Frames per clip.
        frame_differences: bool. Stack `frame[t] - frame[t - 1]` (zeros for
            the first frame) onto each frame's channels before encoding it.
        num_layers: int. Temporal Transformer blocks.
        num_heads: int. Must divide the image encoder's pooled size.
        intermediate_dim: int.
        dropout_rate: float.
        pooling: `"mean"` or `"attention"`.
        layer_norm_epsilon: float.
        name: str.
        dtype: dtype or policy name; None for the global policy.

    Returns:
        A functional `keras.Model` with input `videos`
        `(batch_size, num_frames, height, width, channels)` and outputs
        `{"sequence_output": (batch_size, num_frames, hidden_dim),
        "pooled_output": (batch_size, hidden_dim)}` where `hidden_dim` is the
        image encoder's pooled size and `channels` the image encoder's (half
        of it with `frame_differences=True`).

    Example:

    ```python
    frames = mmzoo.presets.build_from_preset("vit_image_encoder_tiny")
    encoder = mmzoo.encoders.build_frame_video_encoder(
        frames, num_frames=8, num_layers=1, num_heads=2, intermediate_dim=64)
    # A conv tower that sees each RGB frame and its change from the last one.
    frames = mmzoo.encoders.build_conv_image_encoder(image_shape=(32, 32, 6))
    encoder = mmzoo.encoders.build_frame_video_encoder(
        frames, num_frames=8, frame_differences=True, num_layers=1, num_heads=2,
        intermediate_dim=64)
    encoder(np.zeros((2, 8, 32, 32, 3)))["pooled_output"].shape  # (2, 64)
    ```
    """
    if not isinstance(image_encoder, keras.Model):
        raise ValueError(
            "`image_encoder` must be a built keras.Model. "
            f"Received: image_encoder={image_encoder!r}"
        )
    num_frames = check_positive_int("num_frames", num_frames)
    frame_shape = tuple(image_encoder.inputs[0].shape[1:])
    if len(frame_shape) != 3:
        raise ValueError(
            "`image_encoder` must take images (batch_size, height, width, channels). "
            f"Received: image_encoder with input shape {image_encoder.inputs[0].shape}"
        )
    check_bool("frame_differences", frame_differences)
    if frame_differences:
        channels = frame_shape[-1]
        if channels is None or channels % 2:
            raise ValueError(
                "With `frame_differences=True` the image encoder takes each frame and its "
                "difference stacked on the channels, so its channel count must be even "
                f"(6 for RGB videos). Received: image_encoder with input shape "
                f"{image_encoder.inputs[0].shape}"
            )
        frame_shape = frame_shape[:-1] + (channels // 2,)
    feature_spec = image_encoder.output
    if isinstance(feature_spec, dict):
        if "pooled_output" not in feature_spec:
            raise ValueError(
                "`image_encoder` returns a dict without `pooled_output`. "
                f"Received: output keys {sorted(feature_spec)}"
            )
        feature_spec = feature_spec["pooled_output"]
    if len(feature_spec.shape) != 2:
        raise ValueError(
            "`image_encoder` must return pooled features (batch_size, dim). "
            f"Received: output shape {feature_spec.shape}"
        )
    hidden_dim = feature_spec.shape[-1]
    check_transformer_args(num_layers, num_heads, hidden_dim, intermediate_dim, dropout_rate)

    # === Functional Model ===
    videos = keras.Input(shape=(num_frames,) + frame_shape, name="videos")
    x = videos
    if frame_differences:
        x = FrameDifferences(dtype=dtype, name="frame_differences")(x)
    frames = FoldFrames(dtype=dtype, name="fold_frames")(x)
    features = image_encoder(frames)
    if isinstance(features, dict):
        features = features["pooled_output"]
    x = UnfoldFrames(num_frames, dtype=dtype, name="unfold_frames")(features)
    positions = keras_hub.layers.PositionEmbedding(
        sequence_length=num_frames, dtype=dtype, name="temporal_position_embedding"
    )(x)
    x = keras.layers.Add(dtype=dtype, name="add_positions")([x, positions])
    for i in range(num_layers):
        x = transformer_block(
            i, num_heads, intermediate_dim, dropout_rate, layer_norm_epsilon, dtype,
            prefix="temporal",
        )(x)
    sequence = keras.layers.LayerNormalization(
        epsilon=layer_norm_epsilon, dtype=dtype, name="temporal_final_norm"
    )(x)
    pooled = pool_sequence(sequence, None, pooling, num_heads, dtype)
    return keras.Model(
        videos, {"sequence_output": sequence, "pooled_output": pooled}, name=name
    )


@keras.saving.register_keras_serializable(package="mmzoo")
class FrameDifferences(keras.layers.Layer):
    """Appends each frame's difference to the previous frame to its channels.

    `(batch, frames, height, width, channels)` -> `(batch, frames, height,
    width, 2 * channels)`: the frame, then `frame[t] - frame[t - 1]`, zero for
    the first frame. Where an object moves, the difference is non-zero at its
    leading and trailing edges, so a per-patch layer sees the motion without
    comparing tokens across time.

    Example:

    >>> videos = np.zeros((1, 3, 2, 2, 1), "float32")
    >>> videos[0, 1:] = 1.0  # Lights up at frame 1.
    >>> out = mmzoo.encoders.FrameDifferences()(videos)
    >>> out.shape
    (1, 3, 2, 2, 2)
    >>> keras.ops.convert_to_numpy(out)[0, :, 0, 0, 1]
    array([0., 1., 0.], dtype=float32)
    """

    def call(self, videos):
        differences = videos[:, 1:] - videos[:, :-1]
        differences = ops.concatenate([ops.zeros_like(videos[:, :1]), differences], axis=1)
        return ops.concatenate([videos, differences], axis=-1)

    def compute_output_shape(self, videos_shape):
        channels = None if videos_shape[-1] is None else 2 * videos_shape[-1]
        return tuple(videos_shape[:-1]) + (channels,)


@keras.saving.register_keras_serializable(package="mmzoo")
class FoldFrames(keras.layers.Layer):
    """`(batch, frames, ...)` -> `(batch * frames, ...)`, so a per-image model
    can run on every frame in one call (no Python loop, no `vectorized_map`)."""

    def call(self, videos):
        return ops.reshape(videos, (-1,) + tuple(videos.shape[2:]))

    def compute_output_shape(self, videos_shape):
        batch = None if videos_shape[0] is None else videos_shape[0] * videos_shape[1]
        return (batch,) + tuple(videos_shape[2:])


@keras.saving.register_keras_serializable(package="mmzoo")
class UnfoldFrames(keras.layers.Layer):
    """`(batch * num_frames, ...)` -> `(batch, num_frames, ...)`; undoes `FoldFrames`."""

    def __init__(self, num_frames, **kwargs):
        super().__init__(**kwargs)
        num_frames = check_positive_int("num_frames", num_frames)
        self.num_frames = num_frames

    def call(self, inputs):
        return ops.reshape(inputs, (-1, self.num_frames) + tuple(inputs.shape[1:]))

    def compute_output_shape(self, inputs_shape):
        batch = None if inputs_shape[0] is None else inputs_shape[0] // self.num_frames
        return (batch, self.num_frames) + tuple(inputs_shape[1:])

    def get_config(self):
        config = super().get_config()
        config["num_frames"] = self.num_frames
        return config
