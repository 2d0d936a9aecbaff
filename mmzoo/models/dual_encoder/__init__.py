from mmzoo.models.dual_encoder import dual_encoder_presets  # noqa: F401
from mmzoo.models.dual_encoder.dual_encoder_model import DualEncoder
from mmzoo.models.dual_encoder.dual_encoder_model import DualEncoderHead
from mmzoo.models.dual_encoder.dual_encoder_model import build_dual_encoder
