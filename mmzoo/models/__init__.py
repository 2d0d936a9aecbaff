"""Model families; each is a functional graph built from any mmzoo encoder."""

from mmzoo.models.dual_encoder import DualEncoder
from mmzoo.models.dual_encoder import build_dual_encoder
from mmzoo.models.fusion_classifier import FUSION_TYPES
from mmzoo.models.fusion_classifier import FusionClassifier
from mmzoo.models.fusion_classifier import build_fusion_classifier
from mmzoo.models.fusion_classifier import classification_split
from mmzoo.models.image_captioning import ImageCaptioningModel
from mmzoo.models.image_captioning import build_image_captioning_model
from mmzoo.models.image_captioning import teacher_forcing_split
from mmzoo.models.video_qa import VideoQAModel
from mmzoo.models.video_qa import build_video_qa_model
from mmzoo.models.video_qa import video_qa_training_split

__all__ = [
    "DualEncoder",
    "FUSION_TYPES",
    "FusionClassifier",
    "ImageCaptioningModel",
    "VideoQAModel",
    "build_dual_encoder",
    "build_fusion_classifier",
    "build_image_captioning_model",
    "classification_split",
    "teacher_forcing_split",
    "video_qa_training_split",
]
