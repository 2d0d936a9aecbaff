import collections
import re

import numpy as np

import mmzoo.data
from mmzoo.data.synthetic import shapes as S
from mmzoo.data.synthetic.shapes_captions import LOCATION_PHRASES
from mmzoo.testing import TestCase

_OBJECT = rf"(small|large) ({'|'.join(S.COLORS)}) ({'|'.join(S.SHAPES)})"
_LOCATION_OF_PHRASE = dict(
    zip(LOCATION_PHRASES, [(r, c) for r in range(3) for c in range(3)])
)


def pixel_objects(image):
    """Shapes read off the pixels alone, one per occupied grid cell.

    Shapes never leave their cell of the 3x3 grid, so each cell's bright
    pixels are one shape. Colour: nearest palette colour of its mean pixel.
    Size: area (small shapes cover < 80 px at 64x64). Kind: how much of its
    bounding box it fills (square ~1, circle ~0.8), else where its widest row
    is (a triangle's is at the bottom, a diamond's in the middle).
    """
    size = image.shape[0]
    bounds = [round(i * size / 3) for i in range(4)]
    foreground = image.max(axis=-1) > 0.5
    objects = []
    for row in range(3):
        for col in range(3):
            y0, y1, x0, x1 = bounds[row], bounds[row + 1], bounds[col], bounds[col + 1]
            mask = foreground[y0:y1, x0:x1]
            if not mask.any():
                continue
            ys, xs = np.nonzero(mask)
            box = mask[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
            fill = box.mean()
            widths = box.sum(axis=1)
            widest = np.flatnonzero(widths == widths.max()).mean() / max(len(widths) - 1, 1)
            if fill > 0.9:
                kind = "square"
            elif fill > 0.68:
                kind = "circle"
            else:
                kind = "triangle" if widest > 0.75 else "diamond"
            objects.append({
                "row": row,
                "col": col,
                "x": x0 + xs.mean(),
                "y": y0 + ys.mean(),
                "color": S.COLORS[S.nearest_color(image[y0:y1, x0:x1][mask].mean(axis=0))],
                "size": "small" if mask.sum() < 80 * (size / 64) ** 2 else "large",
                "shape": kind,
            })
    return objects


def matching(objects, size, color, shape):
    return [o for o in objects if (o["size"], o["color"], o["shape"]) == (size, color, shape)]


class ShapesCaptionsTest(TestCase):
    def setUp(self):
        super().setUp()
        self.data = mmzoo.data.generate_shapes_captions(150, split="validation", seed=3)

    def test_arrays(self):
        images, captions = self.data["images"], self.data["captions"]
        self.assertEqual(images.shape, (150, 64, 64, 3))
        self.assertEqual(images.dtype, np.float32)
        self.assertGreaterEqual(images.min(), 0.0)
        self.assertLessEqual(images.max(), 1.0)
        self.assertEqual(captions.shape, (150, 5))
        self.assertTrue(all(isinstance(c, str) and c for c in captions.ravel()))

    def test_one_to_three_shapes_in_pixels(self):
        counts = [len(pixel_objects(image)) for image in self.data["images"]]
        self.assertEqual(set(counts), {1, 2, 3})
        self.assertAllEqual(counts, self.data["scene"]["num_shapes"])

    def test_shapes_named_in_captions_are_the_drawn_shapes(self):
        # Size, colour and kind words agree with the pixels, for every shape.
        for image, captions in zip(self.data["images"], self.data["captions"]):
            drawn = collections.Counter(
                (o["size"], o["color"], o["shape"]) for o in pixel_objects(image)
            )
            for caption in captions:
                named = collections.Counter(re.findall(_OBJECT, caption))
                self.assertEqual(named, drawn, msg=caption)

    def test_relations_agree_with_drawn_positions(self):
        pattern = rf"{_OBJECT} (to the left of|to the right of|above|below) a {_OBJECT}"
        checked = 0
        for image, captions in zip(self.data["images"], self.data["captions"]):
            objects = pixel_objects(image)
            for caption in captions:
                for match in re.findall(pattern, caption):
                    first, relation, second = match[:3], match[3], match[4:]
                    holds = [
                        {
                            "to the left of": a["x"] < b["x"],
                            "to the right of": a["x"] > b["x"],
                            "above": a["y"] < b["y"],
                            "below": a["y"] > b["y"],
                        }[relation]
                        for a in matching(objects, *first)
                        for b in matching(objects, *second)
                        if a is not b
                    ]
                    self.assertTrue(any(holds), msg=caption)
                    checked += 1
        self.assertGreater(checked, 50)

    def test_locations_agree_with_drawn_positions(self):
        pattern = rf"{_OBJECT} ({'|'.join(LOCATION_PHRASES)})"
        checked = 0
        for image, captions in zip(self.data["images"], self.data["captions"]):
            objects = pixel_objects(image)
            for caption in captions:
                for match in re.findall(pattern, caption):
                    cell = _LOCATION_OF_PHRASE[match[3]]
                    cells = [(o["row"], o["col"]) for o in matching(objects, *match[:3])]
                    self.assertIn(cell, cells, msg=caption)
                    checked += 1
        self.assertGreater(checked, 50)

    def test_count_words(self):
        for image, captions in zip(self.data["images"], self.data["captions"]):
            count = len(pixel_objects(image))
            for caption in captions:
                if caption.startswith("two shapes"):
                    self.assertEqual(count, 2, msg=caption)
                if caption.startswith("three shapes"):
                    self.assertEqual(count, 3, msg=caption)

    def test_paraphrases_differ(self):
        for captions in self.data["captions"]:
            self.assertLen(set(captions), 5)

    def test_captions_per_image(self):
        data = mmzoo.data.generate_shapes_captions(4, captions_per_image=2, image_size=32)
        self.assertEqual(data["captions"].shape, (4, 2))
        self.assertEqual(data["images"].shape, (4, 32, 32, 3))

    def test_held_out_pairs_only_in_test_unseen(self):
        held_out = {(S.COLORS.index(c), S.SHAPES.index(s)) for c, s in S.HELD_OUT_COMBINATIONS}
        for split in ("train", "validation", "test", "test_unseen"):
            scene = mmzoo.data.generate_shapes_captions(300, split=split)["scene"]
            pairs = [
                {(c, s) for c, s in zip(colors, shapes) if c >= 0}
                for colors, shapes in zip(scene["colors"], scene["shapes"])
            ]
            if split == "test_unseen":
                self.assertTrue(all(p & held_out for p in pairs))
            else:
                self.assertFalse(any(p & held_out for p in pairs))

    def test_scene_matches_pixels(self):
        image, scene = self.data["images"][0], self.data["scene"]
        for k in range(scene["num_shapes"][0]):
            x, y = int(scene["center_x"][0, k]), int(scene["center_y"][0, k])
            self.assertEqual(S.nearest_color(image[y, x]), scene["colors"][0, k])
