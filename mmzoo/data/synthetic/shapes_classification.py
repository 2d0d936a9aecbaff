"""`shapes_classification`: an image and a yes/no question about it.

The label is "yes" when the image has a shape of the asked colour (or the
asked kind). Neither modality alone predicts it:

* The image is drawn first and the label independently of it (exactly half
  "yes" per chunk), so every image-only feature is balanced.
* The question is then chosen to fit the label: for "yes", the attribute of
  a uniformly chosen shape in the image; for "no", a uniformly chosen
  attribute absent from it. In train/validation/test each shape's colour is
  uniform and its kind uniform (see `shapes.HELD_OUT_COMBINATIONS`), and
  shapes are independent, so every question text is as likely under "yes" as
  under "no". (In `test_unseen` the held-out pairs skew the colours, so a
  question-only baseline is a little above chance there.)
"""

import numpy as np

from mmzoo.data.synthetic import shapes as S

CLASS_NAMES = ("no", "yes")
MAX_SHAPES = 3
CHUNK_SIZE = 256

_TEMPLATES = {
    "color": ("is there a {} shape?", "does the image contain a {} shape?"),
    "shape": ("is there a {}?", "does the image contain a {}?"),
}


def generate_chunk(rng, num, image_size, unseen):
    """One chunk of `shapes_classification` (see `generate_shapes_classification`)."""
    scene, colors, shapes, images = S.random_scenes(rng, num, image_size, unseen, MAX_SHAPES)
    num_shapes = scene["present"].sum(axis=1)

    labels = rng.permutation(np.arange(num) % 2).astype("int32")
    asks_color = rng.integers(2, size=num).astype(bool)
    template_ids = rng.integers(2, size=num)
    # Uniform choices made with one random number per example.
    pick = rng.random(num)
    texts = np.empty(num, dtype=object)
    for i in range(num):
        values = colors[i] if asks_color[i] else shapes[i]
        names = S.COLORS if asks_color[i] else S.SHAPES
        if labels[i]:
            candidates = values[values >= 0]  # one entry per shape
        else:
            candidates = np.setdiff1d(np.arange(len(names)), values)
        value = candidates[int(pick[i] * len(candidates))]
        template = _TEMPLATES["color" if asks_color[i] else "shape"][template_ids[i]]
        texts[i] = template.format(names[value])
    return {
        "images": images,
        "texts": texts,
        "labels": labels,
        "scene": {
            "num_shapes": num_shapes,
            "colors": colors,
            "shapes": shapes,
            "center_x": scene["center_x"],
            "center_y": scene["center_y"],
            "radius": scene["radius"],
        },
    }
