"""Model families; each is a functional graph built from any mmzoo encoder."""

from mmzoo.models.image_captioning import ImageCaptioningModel
from mmzoo.models.image_captioning import build_image_captioning_model
from mmzoo.models.image_captioning import teacher_forcing_split

__all__ = ["ImageCaptioningModel", "build_image_captioning_model", "teacher_forcing_split"]
