"""Model families; each is a functional graph built from any mmzoo encoder."""

from mmzoo.models.image_captioning import ImageCaptioningModel
from mmzoo.models.image_captioning import build_image_captioning_model
from mmzoo.models.image_captioning import teacher_forcing_split

__all__ = ["ImageCaptioningModel", "build_image_captioning_model", "teacher_forcing_split"]

from mmzoo.models.fusion_classifier import FUSION_TYPES  # noqa: E402
from mmzoo.models.fusion_classifier import FusionClassifier  # noqa: E402
from mmzoo.models.fusion_classifier import build_fusion_classifier  # noqa: E402
from mmzoo.models.fusion_classifier import classification_split  # noqa: E402

__all__ += ["FUSION_TYPES", "FusionClassifier", "build_fusion_classifier", "classification_split"]

from mmzoo.models.dual_encoder import DualEncoder  # noqa: E402
from mmzoo.models.dual_encoder import build_dual_encoder  # noqa: E402

__all__ += ["DualEncoder", "build_dual_encoder"]

from mmzoo.models.video_qa import VideoQAModel  # noqa: E402
from mmzoo.models.video_qa import build_video_qa_model  # noqa: E402
from mmzoo.models.video_qa import video_qa_training_split  # noqa: E402

__all__ += ["VideoQAModel", "build_video_qa_model", "video_qa_training_split"]
