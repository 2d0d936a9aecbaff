"""Dual encoder presets: the towers are given by encoder preset name."""

from mmzoo.presets import register_preset

# Named by path: listing presets imports no model code.
_BUILDER = "mmzoo.models.dual_encoder.dual_encoder_model:build_dual_encoder"
# The class that receives the builder's **kwargs (valid overrides too).
_MODEL_CLASS = "mmzoo.models.dual_encoder.dual_encoder_model:DualEncoder"
# Two views of one modality (SimCLR) are another graph, another class.
_TWO_VIEW_BUILDER = "mmzoo.models.dual_encoder.two_view_encoder_model:build_two_view_encoder"
_TWO_VIEW_CLASS = "mmzoo.models.dual_encoder.two_view_encoder_model:TwoViewEncoder"

DUAL_ENCODER_PRESETS = {
    "dual_encoder_tiny": (
        {
            "image_encoder": "vit_image_encoder_tiny",
            # 32 tokens hold every `shapes_captions` caption (at most 31
            # WordPiece tokens with start and end); 16 cut 39% of them.
            "text_encoder": {"preset": "text_encoder_tiny", "sequence_length": 32},
            "projection_dim": 32,
        },
        "Tiny ViT + tiny text Transformer, 32x32 images, 32 tokens; trains in "
        "seconds on a CPU (CLIP loss).",
    ),
    "dual_encoder_video_tiny": (
        {
            "image_encoder": "video_encoder_tiny",
            "text_encoder": "text_encoder_tiny",
            "projection_dim": 32,
        },
        "Tiny ViViT (8 frames of 32x32) + tiny text Transformer, for video-text retrieval.",
    ),
    "dual_encoder_simclr_tiny": (
        {
            "encoder": "vit_image_encoder_tiny",
            "projection_dim": 32,
            "projection_intermediate_dim": 64,
            "initial_temperature": 0.1,
            "trainable_temperature": False,
        },
        "TwoViewEncoder: one shared tiny ViT on two augmented views, MLP projection, fixed "
        "temperature 0.1 (NT-Xent).",
    ),
    "dual_encoder_siglip_tiny": (
        {
            "image_encoder": "vit_image_encoder_tiny",
            "text_encoder": {"preset": "text_encoder_tiny", "sequence_length": 32},
            "projection_dim": 32,
            "initial_temperature": 0.1,
            "use_bias": True,
            "initial_bias": -10.0,
        },
        "dual_encoder_tiny with SigLIP's scale 10 and bias -10 (SigLIP loss).",
    ),
    "dual_encoder_base": (
        {
            "image_encoder": "vit_image_encoder_base",
            "text_encoder": "text_encoder_base",
            "projection_dim": 512,
        },
        "CLIP ViT-B/16 sizes: ViT-B/16 at 224x224 + 12-layer 512-wide text "
        "tower (77 tokens), 512-d embeddings (about 150M parameters).",
    ),
}

# Presets built by `build_two_view_encoder` (a `TwoViewEncoder`).
_TWO_VIEW_PRESETS = ("dual_encoder_simclr_tiny",)

for _name, (_config, _description) in DUAL_ENCODER_PRESETS.items():
    _two_view = _name in _TWO_VIEW_PRESETS
    register_preset(
        _name, _TWO_VIEW_BUILDER if _two_view else _BUILDER, _config,
        family="dual_encoder", description=_description,
        forwards_to=_TWO_VIEW_CLASS if _two_view else _MODEL_CLASS,
    )
