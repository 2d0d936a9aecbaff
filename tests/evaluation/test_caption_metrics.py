import numpy as np
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from mmzoo.evaluation import caption_metrics
from mmzoo.evaluation import cider_d
from mmzoo.evaluation import corpus_bleu
from mmzoo.evaluation import normalize_caption
from mmzoo.evaluation import rouge_l
from mmzoo.testing import TestCase

WORDS = "a the red blue green circle square triangle small large left of right above".split()


def random_corpus(seed, num_examples=40, empty_every=0):
    rng = np.random.RandomState(seed)
    predictions, references = [], []
    for i in range(num_examples):
        refs = [
            " ".join(rng.choice(WORDS, rng.randint(3, 10)))
            for _ in range(rng.randint(1, 6))
        ]
        # Predictions share words with their references, so n-grams overlap.
        pred = refs[0].split()
        pred = [w if rng.rand() < 0.7 else rng.choice(WORDS) for w in pred]
        pred = pred[: rng.randint(1, len(pred) + 2)]
        if empty_every and i % empty_every == 0:
            pred = []
        predictions.append(" ".join(pred))
        references.append(refs)
    return predictions, references


def reference_scores(predictions, references):
    gts = {i: refs for i, refs in enumerate(references)}
    res = {i: [p] for i, p in enumerate(predictions)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    return bleu, cider, rouge


class CaptionMetricsTest(TestCase):
    def test_equal_to_pycocoevalcap(self):
        for seed in range(5):
            predictions, references = random_corpus(seed)
            bleu, cider, rouge = reference_scores(predictions, references)
            ours = caption_metrics(predictions, references)
            self.assertAllClose([ours[f"bleu_{k}"] for k in range(1, 5)], bleu, atol=1e-6, rtol=0)
            self.assertAllClose(ours["cider_d"], cider, atol=1e-6, rtol=0)
            self.assertAllClose(ours["rouge_l"], rouge, atol=1e-6, rtol=0)

    def test_equal_to_pycocoevalcap_with_empty_predictions(self):
        predictions, references = random_corpus(7, empty_every=3)
        bleu, cider, rouge = reference_scores(predictions, references)
        ours = caption_metrics(predictions, references)
        self.assertAllClose([ours[f"bleu_{k}"] for k in range(1, 5)], bleu, atol=1e-6, rtol=0)
        self.assertAllClose(ours["cider_d"], cider, atol=1e-6, rtol=0)
        self.assertAllClose(ours["rouge_l"], rouge, atol=1e-6, rtol=0)

    def test_per_example_scores(self):
        predictions, references = random_corpus(3, num_examples=10)
        gts = {i: r for i, r in enumerate(references)}
        res = {i: [p] for i, p in enumerate(predictions)}
        _, expected = Cider().compute_score(gts, res)
        _, ours = cider_d(predictions, references, return_per_example=True)
        self.assertAllClose(ours, expected, atol=1e-6)
        _, expected = Rouge().compute_score(gts, res)
        _, ours = rouge_l(predictions, references, return_per_example=True)
        self.assertAllClose(ours, expected, atol=1e-6)

    def test_perfect_and_empty(self):
        refs = [["a red circle left of a blue square"], ["a small green triangle above a circle"]]
        perfect = corpus_bleu([r[0] for r in refs], refs)
        self.assertAllClose(list(perfect.values()), [1.0] * 4, atol=1e-6)
        empty = caption_metrics(["", ""], refs)
        self.assertEqual(set(empty), {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider_d", "rouge_l"})
        self.assertAllClose(list(empty.values()), [0.0] * 6, atol=1e-6)

    def test_normalization(self):
        self.assertEqual(normalize_caption("A Red, CIRCLE!"), "a red circle")
        self.assertEqual(normalize_caption(b"  two\tsquares. "), "two squares")
        self.assertAllClose(
            corpus_bleu(["A red circle."], [["a red circle"]])["bleu_3"], 1.0, atol=1e-6
        )

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, "same length.*Received: 2 predictions and 1"):
            caption_metrics(["a", "b"], [["a"]])
        with self.assertRaisesRegex(ValueError, "at least one reference.*example 0"):
            caption_metrics(["a"], [[]])
        with self.assertRaisesRegex(ValueError, "Received: 0 predictions"):
            caption_metrics([], [])
