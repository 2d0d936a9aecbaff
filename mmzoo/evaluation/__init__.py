"""Evaluation metrics: captions, VQA, retrieval, zero-shot, classification, linear probes."""

from mmzoo.evaluation.caption_metrics import caption_metrics
from mmzoo.evaluation.caption_metrics import cider_d
from mmzoo.evaluation.caption_metrics import corpus_bleu
from mmzoo.evaluation.caption_metrics import normalize_caption
from mmzoo.evaluation.caption_metrics import rouge_l
from mmzoo.evaluation.classification import classification_report
from mmzoo.evaluation.classification import format_classification_report
from mmzoo.evaluation.linear_probe import linear_probe
from mmzoo.evaluation.retrieval import retrieval_metrics
from mmzoo.evaluation.token_accuracy import MaskedTokenAccuracy
from mmzoo.evaluation.vqa import exact_match_accuracy
from mmzoo.evaluation.vqa import normalize_answer
from mmzoo.evaluation.vqa import vqa_accuracy
from mmzoo.evaluation.vqa import vqa_metrics
from mmzoo.evaluation.zero_shot import zero_shot_accuracy
from mmzoo.evaluation.zero_shot import zero_shot_classifier
from mmzoo.evaluation.zero_shot import zero_shot_predict

__all__ = [
    "MaskedTokenAccuracy",
    "caption_metrics",
    "cider_d",
    "classification_report",
    "corpus_bleu",
    "exact_match_accuracy",
    "format_classification_report",
    "linear_probe",
    "normalize_answer",
    "normalize_caption",
    "retrieval_metrics",
    "rouge_l",
    "vqa_accuracy",
    "vqa_metrics",
    "zero_shot_accuracy",
    "zero_shot_classifier",
    "zero_shot_predict",
]
