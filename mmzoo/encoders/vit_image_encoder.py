import keras

from mmzoo.encoders.common import check_image_shape
from mmzoo.encoders.common import check_transformer_args
from mmzoo.encoders.common import pool_sequence
from mmzoo.layers import PatchEmbedding
from mmzoo.layers.transformer import transformer_block
from mmzoo.layers.validation import check_divisible
from mmzoo.layers.validation import check_positive_int


def build_vit_image_encoder(
    image_shape=(224, 224, 3),
    patch_size=16,
    num_layers=12,
    num_heads=12,
    hidden_dim=768,
    intermediate_dim=3072,
    dropout_rate=0.0,
    pooling="mean",
    layer_norm_epsilon=1e-6,
    name="vit_image_encoder",
    dtype=None,
):
    """Builds a Vision Transformer image tower (Dosovitskiy et al., 2021).

    Patches -> learned position embedding -> `num_layers` pre-norm Transformer
    blocks -> final layer norm. There is no class token: the pooled output is
    the mean of the patch tokens, or learned-query attention pooling (the MAP
    head of big_vision), which work as well without one.

    Args:
        image_shape: tuple `(height, width, channels)`; height and width must
            be divisible by `patch_size`. Images are floats in [0, 1].
        patch_size: int. Side of the square patches.
        num_layers: int. Transformer blocks.
        num_heads: int. Attention heads; must divide `hidden_dim`.
        hidden_dim: int. Token size.
        intermediate_dim: int. MLP hidden size.
        dropout_rate: float.
        pooling: `"mean"` or `"attention"`.
        layer_norm_epsilon: float.
        name: str. Model name.
        dtype: dtype or policy name (e.g. `"mixed_bfloat16"`); None for the
            global policy.

    Returns:
        A functional `keras.Model` with input `images`
        `(batch_size, height, width, channels)` and outputs
        `{"sequence_output": (batch_size, num_patches, hidden_dim),
        "pooled_output": (batch_size, hidden_dim)}`.

    Example:

    ```python
    encoder = mmzoo.encoders.build_vit_image_encoder(
        image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2,
        hidden_dim=32, intermediate_dim=64)
    outputs = encoder(np.zeros((4, 32, 32, 3)))
    outputs["pooled_output"].shape  # (4, 32)
    ```
    """
    image_shape = check_image_shape(image_shape)
    patch_size = check_positive_int("patch_size", patch_size)
    check_divisible("image height", image_shape[0], "patch_size", patch_size)
    check_divisible("image width", image_shape[1], "patch_size", patch_size)
    check_transformer_args(num_layers, num_heads, hidden_dim, intermediate_dim, dropout_rate)

    # === Functional Model ===
    images = keras.Input(shape=image_shape, name="images")
    x = PatchEmbedding(patch_size, hidden_dim, dtype=dtype, name="patch_embedding")(images)
    x = keras.layers.Dropout(dropout_rate, dtype=dtype, name="embedding_dropout")(x)
    for i in range(num_layers):
        x = transformer_block(i, num_heads, intermediate_dim, dropout_rate, layer_norm_epsilon, dtype)(x)
    sequence = keras.layers.LayerNormalization(
        epsilon=layer_norm_epsilon, dtype=dtype, name="final_norm"
    )(x)
    pooled = pool_sequence(sequence, None, pooling, num_heads, dtype)
    return keras.Model(
        images, {"sequence_output": sequence, "pooled_output": pooled}, name=name
    )
