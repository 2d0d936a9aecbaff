"""Image captioning presets: the image encoder is given by preset name."""

from mmzoo.presets import register_preset

# Named by path: listing presets imports no model code.
_BUILDER = "mmzoo.models.image_captioning.image_captioning_model:build_image_captioning_model"
# The class that receives the builder's **kwargs (valid overrides too).
_MODEL_CLASS = "mmzoo.models.image_captioning.image_captioning_model:ImageCaptioningModel"

IMAGE_CAPTIONING_PRESETS = {
    "image_captioning_tiny": (
        {
            "image_encoder": "vit_image_encoder_tiny",
            "vocabulary_size": 512,
            "sequence_length": 24,
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 64,
            "intermediate_dim": 128,
            "dropout_rate": 0.0,
        },
        "Tiny ViT + 2-layer decoder, 32x32 images; trains in minutes on a CPU.",
    ),
    "image_captioning_small": (
        {
            "image_encoder": "vit_image_encoder_small",
            "vocabulary_size": 8000,
            "sequence_length": 32,
            "num_layers": 4,
            "num_heads": 6,
            "hidden_dim": 384,
            "intermediate_dim": 1536,
            "dropout_rate": 0.1,
        },
        "ViT-S/16 + 4-layer 384-wide decoder at 224x224.",
    ),
    "image_captioning_coco": (
        {
            "image_encoder": "vit_image_encoder_base",
            "vocabulary_size": 10000,
            "sequence_length": 32,
            "num_layers": 6,
            "num_heads": 8,
            "hidden_dim": 512,
            "intermediate_dim": 2048,
            "dropout_rate": 0.1,
        },
        "ViT-B/16 + 6-layer decoder at 224x224, sized for COCO captions.",
    ),
}

for _name, (_config, _description) in IMAGE_CAPTIONING_PRESETS.items():
    register_preset(
        _name, _BUILDER, _config, family="image_captioning", description=_description,
        forwards_to=_MODEL_CLASS,
    )
