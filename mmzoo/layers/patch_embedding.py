import keras
from keras import ops

from mmzoo.layers.validation import check_divisible
from mmzoo.layers.validation import check_positive_int
from mmzoo.layers.validation import check_rank


@keras.saving.register_keras_serializable(package="mmzoo")
class PatchEmbedding(keras.layers.Layer):
    """Cuts images into non-overlapping patches and embeds each one (ViT).

    A strided convolution projects every `patch_size x patch_size` patch to
    `hidden_dim` features; a learned position embedding per patch is added
    (Dosovitskiy et al., 2021).

    Args:
        patch_size: int. Side of the square patches, in pixels. The image height
            and width must be divisible by it.
        hidden_dim: int. Size of each patch token.
        use_position_embedding: bool. Add a learned embedding per position.
        kernel_initializer: initializer for the projection.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        images: float tensor `(batch_size, height, width, channels)`.

    Returns:
        `(batch_size, num_patches, hidden_dim)` with
        `num_patches = (height // patch_size) * (width // patch_size)`, patches in
        row-major order.

    Example:

    >>> layer = mmzoo.layers.PatchEmbedding(patch_size=8, hidden_dim=32)
    >>> layer(np.zeros((2, 32, 32, 3))).shape
    (2, 16, 32)
    """

    def __init__(
        self,
        patch_size,
        hidden_dim,
        use_position_embedding=True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        patch_size = check_positive_int("patch_size", patch_size)
        hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.use_position_embedding = use_position_embedding
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.projection = keras.layers.Conv2D(
            hidden_dim,
            kernel_size=patch_size,
            strides=patch_size,
            padding="valid",
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="projection",
        )

    def _grid(self, images_shape):
        check_rank("images", images_shape, 4, "(batch_size, height, width, channels)")
        height, width = images_shape[1], images_shape[2]
        if height is None or width is None:
            raise ValueError(
                "`PatchEmbedding` needs a static image height and width. "
                f"Received: images with shape {tuple(images_shape)}"
            )
        check_divisible("image height", height, "patch_size", self.patch_size)
        check_divisible("image width", width, "patch_size", self.patch_size)
        return height // self.patch_size, width // self.patch_size

    def build(self, images_shape):
        rows, cols = self._grid(images_shape)
        self.num_patches = rows * cols
        self.projection.build(images_shape)
        if self.use_position_embedding:
            self.position_embeddings = self.add_weight(
                shape=(self.num_patches, self.hidden_dim),
                initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                name="position_embeddings",
            )

    def call(self, images):
        x = self.projection(images)
        x = ops.reshape(x, (-1, self.num_patches, self.hidden_dim))
        if self.use_position_embedding:
            x = x + self.position_embeddings
        return x

    def compute_output_shape(self, images_shape):
        rows, cols = self._grid(images_shape)
        return (images_shape[0], rows * cols, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "patch_size": self.patch_size,
                "hidden_dim": self.hidden_dim,
                "use_position_embedding": self.use_position_embedding,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
