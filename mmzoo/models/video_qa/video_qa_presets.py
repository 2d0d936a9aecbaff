"""Video QA presets: the towers are given by preset name."""

from mmzoo.presets import register_preset

# Named by path: listing presets imports no model code.
_BUILDER = "mmzoo.models.video_qa.video_qa_model:build_video_qa_model"

# The closed answer set of the built-in `shapes_video_qa` dataset
# (`mmzoo.data.VIDEO_QA_ANSWERS`; a test checks they agree). Written out
# because `mmzoo.models` does not import the TensorFlow-only `mmzoo.data`.
SHAPES_VIDEO_QA_ANSWERS = (
    "red", "green", "blue", "yellow", "purple", "cyan",
    "circle", "square", "triangle", "diamond",
    "left", "right", "up", "down",
    "one", "two", "three",
)

# The question tower, fusion and answers every tiny preset shares; they
# differ in the video (or image) tower.
_TINY_QUESTION_AND_FUSION = {
    "question_encoder": "text_encoder_tiny",
    "answer_vocabulary": list(SHAPES_VIDEO_QA_ANSWERS),
    "num_fusion_layers": 2,
    "num_heads": 2,
    "hidden_dim": 64,
    "intermediate_dim": 128,
    "dropout_rate": 0.0,
}

VIDEO_QA_PRESETS = {
    "video_qa_tiny": (
        {
            # A conv net on each frame and its difference to the previous
            # one: the differences show the direction of motion, and the
            # first 3x3 convolution reads full-resolution pixels, so shapes
            # 6-9 pixels across keep their outline. On
            # shapes_video_qa it learns every question type in a few CPU
            # minutes, where the ViViT tower of `video_qa_vivit_tiny` stays
            # weak on shape and order (benchmarks/README.md, "Video QA
            # quality").
            "video_encoder": "conv_frame_video_encoder_tiny",
            **_TINY_QUESTION_AND_FUSION,
        },
        "Tiny per-frame conv net (8 frames of 32x32 with frame differences) + temporal "
        "Transformer, question Transformer, 2 cross-attention fusion blocks; "
        "shapes_video_qa answers. Trains in minutes on a CPU.",
    ),
    "video_qa_vivit_tiny": (
        {
            # 4x4-pixel patches, not 8x8: the shapes are 6-9 pixels across.
            # Frame differences make the motion visible inside each tubelet:
            # with 2x8x8 tubelets and none, direction questions stayed at the
            # majority baseline (benchmarks/README.md, "Video QA quality").
            "video_encoder": {
                "preset": "video_encoder_tiny",
                "tubelet_size": (2, 4, 4),
                "frame_differences": True,
            },
            **_TINY_QUESTION_AND_FUSION,
        },
        "Tiny ViViT (8 frames of 32x32, 2x4x4 tubelets, frame differences) + question "
        "Transformer + 2 cross-attention fusion blocks; otherwise video_qa_tiny.",
    ),
    "video_qa_frames_tiny": (
        {
            "video_encoder": "frame_video_encoder_tiny",
            **_TINY_QUESTION_AND_FUSION,
        },
        "Tiny per-frame ViT + temporal Transformer video tower; otherwise video_qa_tiny.",
    ),
    "image_qa_tiny": (
        {
            "video_encoder": "vit_image_encoder_tiny",
            **_TINY_QUESTION_AND_FUSION,
        },
        "Image VQA (a one-frame video): tiny ViT + question Transformer + fusion.",
    ),
    "video_qa_base": (
        {
            "video_encoder": "video_encoder_base",
            "question_encoder": "text_encoder_base",
            "answer_vocabulary": list(SHAPES_VIDEO_QA_ANSWERS),
            "num_fusion_layers": 4,
            "num_heads": 12,
            "hidden_dim": 768,
            "intermediate_dim": 3072,
            "dropout_rate": 0.1,
        },
        "ViViT-B (32 frames at 224x224) + base text Transformer + 4 fusion blocks; "
        "pass your own `answer_vocabulary`.",
    ),
}

for _name, (_config, _description) in VIDEO_QA_PRESETS.items():
    register_preset(
        _name, _BUILDER, _config, family="video_qa", description=_description,
    )
