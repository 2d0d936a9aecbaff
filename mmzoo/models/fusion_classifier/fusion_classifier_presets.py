"""Fusion classifier presets: the encoders are given by preset name."""

from mmzoo.presets import register_preset

# Named by path: listing presets imports no model code.
_BUILDER = "mmzoo.models.fusion_classifier.fusion_classifier_model:build_fusion_classifier"

FUSION_CLASSIFIER_PRESETS = {
    "fusion_classifier_tiny": (
        {
            # A small CNN whose first block runs at full resolution: ViT and
            # ImageNet-style towers (stride-2 stem + max-pooling) did not learn
            # the shape questions of `shapes_classification` with Adam 1e-3
            # (benchmarks/README.md; not re-run at 3e-4). Train the attention
            # head with Adam 3e-4: at 1e-3 it stays at chance on those questions.
            "encoders": {"image": "conv_image_encoder_tiny", "text": "text_encoder_tiny"},
            "num_classes": 2,
            "fusion": "attention",
            "hidden_dim": 32,
            "num_heads": 2,
            "num_layers": 1,
            "intermediate_dim": 64,
            "dropout_rate": 0.0,
        },
        "Tiny CNN (64x64) + tiny text Transformer, one co-attention layer; CPU seconds.",
    ),
    "fusion_classifier_base": (
        {
            "encoders": {"image": "vit_image_encoder_small", "text": "text_encoder_base"},
            "num_classes": 2,
            "fusion": "attention",
            "hidden_dim": 384,
            "num_heads": 6,
            "num_layers": 2,
            "intermediate_dim": 1536,
            "dropout_rate": 0.1,
        },
        "ViT-S/16 (224x224) + CLIP-size text tower, two 384-wide co-attention layers.",
    ),
}

for _name, (_config, _description) in FUSION_CLASSIFIER_PRESETS.items():
    register_preset(
        _name, _BUILDER, _config, family="fusion_classifier", description=_description,
    )
