"""Losses: masked sequence cross-entropy (and the contrastive losses)."""

from mmzoo.losses.masked_sequence_cross_entropy import MaskedSequenceCrossEntropy

__all__ = ["MaskedSequenceCrossEntropy"]
