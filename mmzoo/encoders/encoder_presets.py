"""Encoder presets. Tiny ones train in seconds on a CPU; the others follow the
published sizes (ViT-S/16, ViT-B/16, CLIP's text tower, ViViT-B)."""

from mmzoo.presets import register_preset

# Builders named by path: listing presets imports no model code.
_CNN_IMAGE_ENCODER = "mmzoo.encoders.cnn_image_encoder:build_cnn_image_encoder"
_CONV_IMAGE_ENCODER = "mmzoo.encoders.cnn_image_encoder:build_conv_image_encoder"
_TEXT_ENCODER = "mmzoo.encoders.text_encoder:build_text_encoder"
_FRAME_VIDEO_ENCODER = "mmzoo.encoders.video_encoder:build_frame_video_encoder"
_VIDEO_ENCODER = "mmzoo.encoders.video_encoder:build_video_encoder"
_VIT_IMAGE_ENCODER = "mmzoo.encoders.vit_image_encoder:build_vit_image_encoder"

ENCODER_PRESETS = {
    "vit_image_encoder_tiny": (
        _VIT_IMAGE_ENCODER,
        {
            "image_shape": (32, 32, 3),
            "patch_size": 8,
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 32,
            "intermediate_dim": 64,
        },
        "ViT, 2 layers, 32 wide, 32x32 images; for tests and demos.",
    ),
    "vit_image_encoder_small": (
        _VIT_IMAGE_ENCODER,
        {
            "image_shape": (224, 224, 3),
            "patch_size": 16,
            "num_layers": 12,
            "num_heads": 6,
            "hidden_dim": 384,
            "intermediate_dim": 1536,
        },
        "ViT-S/16 at 224x224 (about 22M parameters).",
    ),
    "vit_image_encoder_base": (
        _VIT_IMAGE_ENCODER,
        {
            "image_shape": (224, 224, 3),
            "patch_size": 16,
            "num_layers": 12,
            "num_heads": 12,
            "hidden_dim": 768,
            "intermediate_dim": 3072,
        },
        "ViT-B/16 at 224x224 (about 86M parameters).",
    ),
    "cnn_image_encoder_tiny": (
        _CNN_IMAGE_ENCODER,
        {
            "backbone": {
                "class_name": "ResNetBackbone",
                "config": {
                    "input_conv_filters": [64],
                    "input_conv_kernel_sizes": [3],
                    "stackwise_num_filters": [64, 64],
                    "stackwise_num_blocks": [1, 1],
                    "stackwise_num_strides": [1, 2],
                    "block_type": "basic_block",
                },
            },
            "image_shape": (32, 32, 3),
        },
        "keras-hub ResNet with two basic blocks, 32x32 images.",
    ),
    "conv_image_encoder_tiny": (
        _CONV_IMAGE_ENCODER,
        {
            "image_shape": (64, 64, 3),
            "stackwise_num_filters": (16, 32, 64, 64),
            "stackwise_num_strides": (1, 2, 2, 2),
        },
        "Four 3x3 conv + batch norm blocks, full resolution first, 64x64 images -> 8x8 tokens.",
    ),
    "cnn_image_encoder_efficientnet_v2_b0": (
        _CNN_IMAGE_ENCODER,
        {"backbone": "efficientnet_v2_b0", "image_shape": (224, 224, 3)},
        "keras.applications EfficientNetV2-B0 (random init unless weights are given).",
    ),
    "text_encoder_tiny": (
        _TEXT_ENCODER,
        {
            "vocabulary_size": 512,
            "sequence_length": 16,
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 32,
            "intermediate_dim": 64,
        },
        "Text Transformer, 2 layers, 32 wide, 16 tokens.",
    ),
    "text_encoder_base": (
        _TEXT_ENCODER,
        {
            "vocabulary_size": 49408,
            "sequence_length": 77,
            "num_layers": 12,
            "num_heads": 8,
            "hidden_dim": 512,
            "intermediate_dim": 2048,
        },
        "CLIP ViT-B text tower size: 12 layers, 512 wide, 77 tokens.",
    ),
    "video_encoder_tiny": (
        _VIDEO_ENCODER,
        {
            "num_frames": 8,
            "image_shape": (32, 32, 3),
            "tubelet_size": (2, 8, 8),
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 32,
            "intermediate_dim": 64,
        },
        "ViViT (factorised attention), 8 frames of 32x32, 2 layers.",
    ),
    "video_encoder_base": (
        _VIDEO_ENCODER,
        {
            "num_frames": 32,
            "image_shape": (224, 224, 3),
            "tubelet_size": (2, 16, 16),
            "num_layers": 12,
            "num_heads": 12,
            "hidden_dim": 768,
            "intermediate_dim": 3072,
        },
        "ViViT-B with factorised self-attention, 32 frames at 224x224.",
    ),
    "frame_video_encoder_tiny": (
        _FRAME_VIDEO_ENCODER,
        {
            "image_encoder": "vit_image_encoder_tiny",
            "num_frames": 8,
            "num_layers": 1,
            "num_heads": 2,
            "intermediate_dim": 64,
        },
        "Tiny ViT on each of 8 frames + 1 temporal Transformer layer.",
    ),
    "conv_frame_video_encoder_tiny": (
        _FRAME_VIDEO_ENCODER,
        {
            # Each 32x32 frame with its difference to the previous frame (6
            # channels) through three stride-2 conv blocks (32 -> 4x4), mean
            # pooled, then a temporal Transformer over the 8 frame vectors.
            "image_encoder": {
                "preset": "conv_image_encoder_tiny",
                "image_shape": (32, 32, 6),
                "stackwise_num_filters": (16, 32, 64),
                "stackwise_num_strides": (2, 2, 2),
            },
            "num_frames": 8,
            "frame_differences": True,
            "num_layers": 1,
            "num_heads": 2,
            "intermediate_dim": 64,
        },
        "Small conv net on each of 8 frames of 32x32 and its frame difference + 1 "
        "temporal Transformer layer.",
    ),
}

for _name, (_builder, _config, _description) in ENCODER_PRESETS.items():
    register_preset(_name, _builder, _config, family="encoders", description=_description)
