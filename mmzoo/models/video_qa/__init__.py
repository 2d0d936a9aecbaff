from mmzoo.models.video_qa import video_qa_presets  # noqa: F401
from mmzoo.models.video_qa.video_qa_layers import ModalityConcat
from mmzoo.models.video_qa.video_qa_model import VideoQAModel
from mmzoo.models.video_qa.video_qa_model import build_video_qa_model
from mmzoo.models.video_qa.video_qa_model import video_qa_training_split
