import keras
from keras import ops

from mmzoo.layers.validation import check_divisible
from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.validation import check_rank


def _tubelet_size(value):
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ValueError(
            "`tubelet_size` must be a positive int or a tuple of 3 positive ints "
            f"(frames, height, width). Received: tubelet_size={value!r}"
        )
    return tuple(value)


@keras.saving.register_keras_serializable(package="mmzoo")
class TubeletEmbedding(keras.layers.Layer):
    """Embeds non-overlapping space-time tubelets of a video (ViViT).

    A 3D convolution with stride equal to its kernel projects every
    `frames x height x width` tubelet to `hidden_dim` features (Arnab et al.,
    2021, "tubelet embedding"). Position is encoded by two learned, factorised
    embeddings, one per temporal index and one per spatial patch, so the same
    spatial embedding is shared across time.

    Args:
        tubelet_size: int or tuple `(frames, height, width)`. Tubelet extent.
            The video's frame count, height and width must be divisible by it.
        hidden_dim: int. Size of each tubelet token.
        use_position_embedding: bool. Add the learned factorised embeddings.
        kernel_initializer: initializer for the projection.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        videos: float tensor `(batch_size, num_frames, height, width, channels)`.

    Returns:
        `(batch_size, num_frames // t, num_patches, hidden_dim)`, where
        `num_patches = (height // h) * (width // w)`: time and space kept as
        separate axes for factorised attention.

    Example:

    >>> layer = mmzoo.layers.TubeletEmbedding(tubelet_size=(2, 8, 8), hidden_dim=32)
    >>> layer(np.zeros((2, 8, 32, 32, 3))).shape
    (2, 4, 16, 32)
    """

    def __init__(
        self,
        tubelet_size,
        hidden_dim,
        use_position_embedding=True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.tubelet_size = _tubelet_size(tubelet_size)
        hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        self.hidden_dim = hidden_dim
        self.use_position_embedding = use_position_embedding
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.projection = keras.layers.Conv3D(
            hidden_dim,
            kernel_size=self.tubelet_size,
            strides=self.tubelet_size,
            padding="valid",
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="projection",
        )

    def _grid(self, videos_shape):
        check_rank(
            "videos", videos_shape, 5, "(batch_size, num_frames, height, width, channels)"
        )
        dims = videos_shape[1:4]
        if any(d is None for d in dims):
            raise ValueError(
                "`TubeletEmbedding` needs a static frame count, height and width. "
                f"Received: videos with shape {tuple(videos_shape)}"
            )
        for name, dim, size in zip(("num_frames", "height", "width"), dims, self.tubelet_size):
            check_divisible(f"video {name}", dim, "tubelet_size", size)
        return tuple(d // s for d, s in zip(dims, self.tubelet_size))

    def build(self, videos_shape):
        steps, rows, cols = self._grid(videos_shape)
        self.num_steps = steps
        self.num_patches = rows * cols
        self.projection.build(videos_shape)
        if self.use_position_embedding:
            init = keras.initializers.TruncatedNormal(stddev=0.02)
            self.temporal_position_embeddings = self.add_weight(
                shape=(steps, 1, self.hidden_dim),
                initializer=init,
                name="temporal_position_embeddings",
            )
            self.spatial_position_embeddings = self.add_weight(
                shape=(1, self.num_patches, self.hidden_dim),
                initializer=init,
                name="spatial_position_embeddings",
            )

    def call(self, videos):
        x = self.projection(videos)
        x = ops.reshape(x, (-1, self.num_steps, self.num_patches, self.hidden_dim))
        if self.use_position_embedding:
            x = x + self.temporal_position_embeddings + self.spatial_position_embeddings
        return x

    def compute_output_shape(self, videos_shape):
        steps, rows, cols = self._grid(videos_shape)
        return (videos_shape[0], steps, rows * cols, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "tubelet_size": self.tubelet_size,
                "hidden_dim": self.hidden_dim,
                "use_position_embedding": self.use_position_embedding,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
