"""`shapes_captions`: images of 1-3 coloured shapes with paraphrased captions."""

import numpy as np

from mmzoo.data.synthetic import shapes as S

MAX_SHAPES = 3
MAX_CAPTIONS_PER_IMAGE = 5
CHUNK_SIZE = 256

_LOCATIONS = {
    (0, 0): "in the top left corner",
    (0, 1): "at the top",
    (0, 2): "in the top right corner",
    (1, 0): "on the left",
    (1, 1): "in the center",
    (1, 2): "on the right",
    (2, 0): "in the bottom left corner",
    (2, 1): "at the bottom",
    (2, 2): "in the bottom right corner",
}
LOCATION_PHRASES = tuple(_LOCATIONS.values())
RELATION_PHRASES = ("to the left of", "to the right of", "above", "below")


def relation(a, b):
    """How object `a` lies relative to `b` (dicts with `row` and `col`).

    Different columns give left/right (cells are far enough apart that the
    drawn centres always agree); the same column gives above/below.
    """
    if a["col"] != b["col"]:
        return "to the left of" if a["col"] < b["col"] else "to the right of"
    return "above" if a["row"] < b["row"] else "below"


def _name(o):
    return f"{S.SIZES[o['size']]} {S.COLORS[o['color']]} {S.SHAPES[o['shape']]}"


def _loc(o):
    return _LOCATIONS[(o["row"], o["col"])]


# Five paraphrase templates per number of shapes; every template names every
# shape, and relations and locations are computed from the drawn positions.
_TEMPLATES = {
    1: (
        lambda a: f"a {_name(a)}",
        lambda a: f"a {_name(a)} {_loc(a)}",
        lambda a: f"there is a {_name(a)} {_loc(a)}",
        lambda a: f"a picture of a {_name(a)}",
        lambda a: f"one {_name(a)} on a dark background",
    ),
    2: (
        lambda a, b: f"a {_name(a)} and a {_name(b)}",
        lambda a, b: f"a {_name(a)} {relation(a, b)} a {_name(b)}",
        lambda a, b: f"two shapes: a {_name(a)} and a {_name(b)}",
        lambda a, b: f"a {_name(a)} {_loc(a)} and a {_name(b)} {_loc(b)}",
        lambda a, b: f"a picture of a {_name(a)} {relation(a, b)} a {_name(b)}",
    ),
    3: (
        lambda a, b, c: f"a {_name(a)}, a {_name(b)} and a {_name(c)}",
        lambda a, b, c: f"a {_name(a)} {relation(a, b)} a {_name(b)}, and a {_name(c)}",
        lambda a, b, c: f"three shapes: a {_name(a)}, a {_name(b)} and a {_name(c)}",
        lambda a, b, c: (
            f"a {_name(a)} {_loc(a)}, a {_name(b)} {_loc(b)} and a {_name(c)} {_loc(c)}"
        ),
        lambda a, b, c: (
            f"a {_name(a)} {relation(a, b)} a {_name(b)}, and a {_name(c)} {_loc(c)}"
        ),
    ),
}


def generate_chunk(rng, num, image_size, unseen, captions_per_image=5):
    """One chunk of `shapes_captions` (see `generate_shapes_captions`)."""
    scene, colors, shapes, images = S.random_scenes(rng, num, image_size, unseen, MAX_SHAPES)
    present = scene["present"]
    num_shapes = present.sum(axis=1)

    # Per caption: which template and in which order the shapes are named.
    template_order = np.argsort(rng.random((num, MAX_CAPTIONS_PER_IMAGE)), axis=1)
    name_order = np.argsort(rng.random((num, captions_per_image, MAX_SHAPES)), axis=2)
    captions = np.empty((num, captions_per_image), dtype=object)
    for i in range(num):
        n = int(num_shapes[i])
        objects = [
            {
                "color": colors[i, k],
                "shape": shapes[i, k],
                "size": scene["sizes"][i, k],
                "row": scene["rows"][i, k],
                "col": scene["cols"][i, k],
            }
            for k in range(n)
        ]
        for j in range(captions_per_image):
            order = [k for k in name_order[i, j] if k < n]
            template = _TEMPLATES[n][template_order[i, j]]
            captions[i, j] = template(*[objects[k] for k in order])

    return {
        "images": images,
        "captions": captions,
        "scene": {
            "num_shapes": num_shapes,
            "colors": colors,
            "shapes": shapes,
            "sizes": np.where(present, scene["sizes"], -1),
            "rows": np.where(present, scene["rows"], -1),
            "cols": np.where(present, scene["cols"], -1),
            "center_x": scene["center_x"],
            "center_y": scene["center_y"],
            "radius": scene["radius"],
        },
    }
