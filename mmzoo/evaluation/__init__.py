"""Evaluation metrics: caption metrics, token accuracy (and retrieval, VQA...)."""

from mmzoo.evaluation.token_accuracy import MaskedTokenAccuracy

__all__ = ["MaskedTokenAccuracy"]
from mmzoo.evaluation.caption_metrics import caption_metrics  # noqa: E402
from mmzoo.evaluation.caption_metrics import cider_d  # noqa: E402
from mmzoo.evaluation.caption_metrics import corpus_bleu  # noqa: E402
from mmzoo.evaluation.caption_metrics import normalize_caption  # noqa: E402
from mmzoo.evaluation.caption_metrics import rouge_l  # noqa: E402

__all__ += ["caption_metrics", "cider_d", "corpus_bleu", "normalize_caption", "rouge_l"]
from mmzoo.evaluation.vqa import exact_match_accuracy  # noqa: E402
from mmzoo.evaluation.vqa import normalize_answer  # noqa: E402
from mmzoo.evaluation.vqa import vqa_accuracy  # noqa: E402
from mmzoo.evaluation.vqa import vqa_metrics  # noqa: E402

__all__ += ["exact_match_accuracy", "normalize_answer", "vqa_accuracy", "vqa_metrics"]
from mmzoo.evaluation.classification import classification_report  # noqa: E402
from mmzoo.evaluation.classification import format_classification_report  # noqa: E402

__all__ += ["classification_report", "format_classification_report"]
from mmzoo.evaluation.retrieval import retrieval_metrics  # noqa: E402

__all__ += ["retrieval_metrics"]
from mmzoo.evaluation.zero_shot import zero_shot_accuracy  # noqa: E402
from mmzoo.evaluation.zero_shot import zero_shot_classifier  # noqa: E402
from mmzoo.evaluation.zero_shot import zero_shot_predict  # noqa: E402

__all__ += ["zero_shot_accuracy", "zero_shot_classifier", "zero_shot_predict"]
