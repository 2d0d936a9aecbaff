"""Small keras-hub CLIP and SigLIP presets with random weights, saved locally.

They go through the same loading path as a downloaded preset
(`from_preset` on a directory), so code that starts from keras-hub presets
can be tested and demonstrated without a network.
"""

import keras_hub

from mmzoo.testing import tokenizers

# CLIP's image normalisation (OpenAI's mean and standard deviation), as
# keras-hub's CLIP presets apply it to [0, 255] pixels.
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def save_contrastive_preset(
    directory,
    kind="clip",
    texts=("a red circle", "a blue square"),
    image_size=32,
    patch_size=8,
    hidden_dim=32,
    num_layers=2,
    num_heads=2,
    intermediate_dim=64,
    projection_dim=24,
    sequence_length=16,
):
    """Saves a small keras-hub CLIP or SigLIP preset with random weights.

    The backbone, its preprocessor (a tokenizer made from the words of
    `texts`, the sequence length and an image converter with CLIP's
    normalisation, or SigLIP's scaling to [-1, 1]) are written with
    `save_to_preset`.

    Args:
        directory: str. Where to save (created if missing).
        kind: `"clip"` or `"siglip"`.
        texts: strings whose words make the vocabulary.
        image_size, patch_size, hidden_dim, num_layers, num_heads,
            intermediate_dim: the towers' sizes.
        projection_dim: CLIP's projection size (SigLIP has none).
        sequence_length: the preprocessor's text length.

    Returns:
        `directory`.

    Example:

    ```python
    path = mmzoo.testing.keras_hub_presets.save_contrastive_preset(tmp_dir, "clip")
    model = mmzoo.models.DualEncoder.from_keras_hub(path)
    ```
    """
    texts = list(texts)
    towers = dict(
        hidden_dim=hidden_dim, num_layers=num_layers, num_heads=num_heads,
        intermediate_dim=intermediate_dim,
    )
    if kind == "clip":
        tokenizer = tokenizers.clip_tokenizer(texts)
        backbone = keras_hub.models.CLIPBackbone(
            keras_hub.models.CLIPVisionEncoder(
                patch_size=patch_size, image_shape=(image_size, image_size, 3), **towers
            ),
            keras_hub.models.CLIPTextEncoder(
                vocabulary_size=tokenizer.vocabulary_size(), embedding_dim=hidden_dim,
                max_sequence_length=sequence_length, **towers,
            ),
            projection_dim=projection_dim,
        )
        converter = keras_hub.layers.CLIPImageConverter(
            image_size=(image_size, image_size),
            scale=[1.0 / (255.0 * s) for s in _CLIP_STD],
            offset=[-m / s for m, s in zip(_CLIP_MEAN, _CLIP_STD)],
            interpolation="bicubic",
        )
        preprocessor = keras_hub.models.CLIPPreprocessor(
            tokenizer, converter, sequence_length=sequence_length
        )
    elif kind == "siglip":
        tokenizer = tokenizers.siglip_tokenizer(texts)
        backbone = keras_hub.models.SigLIPBackbone(
            keras_hub.models.SigLIPVisionEncoder(
                patch_size=patch_size, image_shape=(image_size, image_size, 3), **towers
            ),
            keras_hub.models.SigLIPTextEncoder(
                vocabulary_size=tokenizer.vocabulary_size(), embedding_dim=hidden_dim,
                max_sequence_length=sequence_length, **towers,
            ),
        )
        converter = keras_hub.layers.SigLIPImageConverter(
            image_size=(image_size, image_size), scale=1.0 / 127.5, offset=-1.0,
            interpolation="bicubic",
        )
        preprocessor = keras_hub.models.SigLIPPreprocessor(
            tokenizer, converter, sequence_length=sequence_length
        )
    else:
        raise ValueError(f"`kind` must be 'clip' or 'siglip'. Received: kind={kind!r}")
    backbone.save_to_preset(directory)
    preprocessor.save_to_preset(directory)
    return directory


def save_trained_preset(model, backbone, preprocessor, directory):
    """Saves a `DualEncoder` made by `from_keras_hub(backbone)` as a keras-hub preset.

    The model's towers are the backbone's own encoder layers (trained in
    place); CLIP's projections, the logit scale and SigLIP's bias are copied
    back into `backbone`, which is then saved with `preprocessor` (the
    keras-hub `CLIPPreprocessor` / `SigLIPPreprocessor` the model was made
    with). Loading the directory with `DualEncoder.from_keras_hub` gives the
    trained model back: a stand-in, offline, for a downloaded pretrained
    preset.

    Returns:
        `directory`.
    """
    if model.image_encoder.get_layer(backbone.vision_encoder.name) is not backbone.vision_encoder:
        raise ValueError(
            "`model` must be made by `DualEncoder.from_keras_hub(backbone)` with this "
            "`backbone` (its towers hold the backbone's encoder layers)."
        )
    if isinstance(backbone, keras_hub.models.CLIPBackbone):
        backbone.vision_projection.kernel.assign(model.image_projection.output_dense.kernel)
        backbone.text_projection.kernel.assign(model.text_projection.output_dense.kernel)
        backbone.clip_head.logit_scale.assign(model.head.log_logit_scale)
    else:
        backbone.siglip_head.logit_scale.assign(model.head.log_logit_scale)
        backbone.siglip_head.logit_bias.assign(model.head.logit_bias)
    backbone.save_to_preset(directory)
    preprocessor.save_to_preset(directory)
    return directory
