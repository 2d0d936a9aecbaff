"""Tower builders: image (ViT, CNN / keras-hub backbones), text and video.

Every builder returns a functional `keras.Model` whose outputs are
`{"sequence_output": (batch, length, dim), "pooled_output": (batch, dim)}`.
"""

from mmzoo.encoders import encoder_presets  # noqa: F401  registers the presets
from mmzoo.encoders.cnn_image_encoder import KERAS_APPLICATIONS
from mmzoo.encoders.cnn_image_encoder import build_cnn_image_encoder
from mmzoo.encoders.cnn_image_encoder import build_conv_image_encoder
from mmzoo.encoders.text_encoder import build_text_encoder
from mmzoo.encoders.video_encoder import FoldFrames
from mmzoo.encoders.video_encoder import FrameDifferences
from mmzoo.encoders.video_encoder import UnfoldFrames
from mmzoo.encoders.video_encoder import build_frame_video_encoder
from mmzoo.encoders.video_encoder import build_video_encoder
from mmzoo.encoders.vit_image_encoder import build_vit_image_encoder

__all__ = [
    "KERAS_APPLICATIONS",
    "FoldFrames",
    "FrameDifferences",
    "UnfoldFrames",
    "build_cnn_image_encoder",
    "build_conv_image_encoder",
    "build_frame_video_encoder",
    "build_text_encoder",
    "build_video_encoder",
    "build_vit_image_encoder",
]
