import collections

import numpy as np

import mmzoo.data
from mmzoo.data.synthetic import shapes as S
from mmzoo.testing import TestCase


def pixel_colors(image):
    """Colours of the shapes drawn, read off the pixels (one shape per cell)."""
    size = image.shape[0]
    bounds = [round(i * size / 3) for i in range(4)]
    colors = set()
    for r in range(3):
        for c in range(3):
            cell = image[bounds[r]:bounds[r + 1], bounds[c]:bounds[c + 1]]
            mask = cell.max(axis=-1) > 0.5
            if mask.any():
                colors.add(S.COLORS[S.nearest_color(cell[mask].mean(axis=0))])
    return colors


class ShapesClassificationTest(TestCase):
    def setUp(self):
        super().setUp()
        self.data = mmzoo.data.generate_shapes_classification(2048, split="train", seed=0)
        scene = self.data["scene"]
        self.colors = [
            frozenset(int(c) for c in row if c >= 0) for row in scene["colors"]
        ]
        self.shapes = [
            frozenset(int(s) for s in row if s >= 0) for row in scene["shapes"]
        ]

    def assertBalancedWithin(self, feature_values, min_count=100, tolerance=0.1):
        """P(label = yes) is 0.5 +- tolerance within every frequent value."""
        groups = collections.defaultdict(list)
        for value, label in zip(feature_values, self.data["labels"]):
            groups[value].append(label)
        frequent = {v: np.mean(l) for v, l in groups.items() if len(l) >= min_count}
        self.assertNotEmpty(frequent)
        for value, rate in frequent.items():
            self.assertAlmostEqual(rate, 0.5, delta=tolerance, msg=f"{value}: {rate:.2f}")

    def test_arrays(self):
        self.assertEqual(self.data["images"].shape, (2048, 64, 64, 3))
        self.assertEqual(self.data["labels"].dtype, np.int32)
        self.assertEqual(mmzoo.data.CLASSIFICATION_CLASS_NAMES, ("no", "yes"))

    def test_labels_balanced(self):
        self.assertEqual(self.data["labels"].mean(), 0.5)

    def test_labels_agree_with_pixels_and_scene(self):
        for image, text, label, shapes in zip(
            self.data["images"][:300], self.data["texts"], self.data["labels"], self.shapes
        ):
            asked = [c for c in S.COLORS if f" {c} " in text]
            if asked:
                self.assertEqual(asked[0] in pixel_colors(image), bool(label), msg=text)
            else:
                (kind,) = [k for k, name in enumerate(S.SHAPES) if f" {name}?" in text]
                self.assertEqual(kind in shapes, bool(label), msg=text)

    def test_text_alone_carries_no_label_information(self):
        self.assertBalancedWithin(self.data["texts"])

    def test_image_alone_carries_no_label_information(self):
        self.assertBalancedWithin(self.data["scene"]["num_shapes"])
        for color in range(len(S.COLORS)):
            self.assertBalancedWithin([color in c for c in self.colors])
        for shape in range(len(S.SHAPES)):
            self.assertBalancedWithin([shape in s for s in self.shapes])
        self.assertBalancedWithin(self.colors, min_count=60, tolerance=0.2)

    def test_text_only_baseline_is_chance(self):
        # Majority label per text, fitted on train, scored on validation.
        validation = mmzoo.data.generate_shapes_classification(1024, split="validation")
        groups = collections.defaultdict(list)
        for text, label in zip(self.data["texts"], self.data["labels"]):
            groups[text].append(label)
        guess = {t: round(np.mean(l)) for t, l in groups.items()}
        accuracy = np.mean(
            [guess.get(t, 1) == l for t, l in zip(validation["texts"], validation["labels"])]
        )
        self.assertLess(accuracy, 0.56)

    def test_held_out_pairs_only_in_test_unseen(self):
        held_out = {(S.COLORS.index(c), S.SHAPES.index(s)) for c, s in S.HELD_OUT_COMBINATIONS}
        for split in ("test", "test_unseen"):
            scene = mmzoo.data.generate_shapes_classification(300, split=split)["scene"]
            pairs = [set(zip(c, s)) & held_out for c, s in zip(scene["colors"], scene["shapes"])]
            self.assertEqual(all(pairs) if split == "test_unseen" else not any(pairs), True)
