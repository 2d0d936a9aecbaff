"""Attributes, scene sampling and a vectorised numpy renderer for shape scenes.

Shared by the three built-in synthetic datasets. Everything here is numpy: a
whole chunk of scenes is rendered at once, one shape slot at a time, so the
cost is a few array operations per slot rather than a Python loop per pixel
or per image.
"""

import numpy as np

COLORS = ("red", "green", "blue", "yellow", "purple", "cyan")
# RGB in [0, 1]. Pairwise distances are >= 0.45, far above the colour jitter
# (+-0.06 per channel), so the nearest palette colour of a shape's pixels is
# always its colour word; every colour has a channel >= 0.75 while the
# background stays <= 0.25, so shapes are easy to tell from the background.
COLOR_VALUES = np.array(
    [
        [0.90, 0.12, 0.12],
        [0.15, 0.75, 0.20],
        [0.15, 0.30, 0.95],
        [0.95, 0.85, 0.15],
        [0.60, 0.20, 0.80],
        [0.15, 0.85, 0.90],
    ],
    dtype="float32",
)
SHAPES = ("circle", "square", "triangle", "diamond")
SIZES = ("small", "large")
SPLITS = ("train", "validation", "test", "test_unseen")

# (color, shape) pairs never drawn in train/validation/test, and present in
# every `test_unseen` example. One per shape and at most one per colour, so
# sampling the colour uniformly and then the shape uniformly among the shapes
# seen with that colour keeps both marginals uniform.
HELD_OUT_COMBINATIONS = (
    ("red", "triangle"),
    ("green", "circle"),
    ("blue", "diamond"),
    ("yellow", "square"),
)
_HELD_OUT = np.array(
    [(COLORS.index(c), SHAPES.index(s)) for c, s in HELD_OUT_COMBINATIONS], "int64"
)
SEEN = np.ones((len(COLORS), len(SHAPES)), bool)
SEEN[_HELD_OUT[:, 0], _HELD_OUT[:, 1]] = False

MIN_IMAGE_SIZE = 24
GRID_SIZE = 3  # Scenes place shapes in distinct cells of a 3x3 grid.
# Half-extent of each shape kind relative to its radius (a diamond's corners
# reach furthest); used to keep shapes inside their cell.
_EXTENT = np.array([1.0, 0.85, 1.0, 1.1], "float32")
MAX_EXTENT = float(_EXTENT.max())
COLOR_JITTER = 0.06
BACKGROUND_RANGE = (0.03, 0.25)

# Seeds: each (dataset, split, seed, chunk) has its own numpy stream, so splits
# never share an image and the first k examples do not depend on how many
# are requested.
_DATASET_STREAM_IDS = {
    "shapes_captions": 1,
    "shapes_video_qa": 2,
    "shapes_classification": 3,
}


def chunk_rng(name, split, seed, chunk):
    """The numpy Generator for one chunk of one split of one dataset."""
    return np.random.default_rng(
        [_DATASET_STREAM_IDS[name], SPLITS.index(split), int(seed), int(chunk)]
    )


def sample_seen_shapes(rng, colors):
    """A shape kind per colour, uniform among the kinds seen with it."""
    allowed = SEEN[colors]
    scores = rng.random(allowed.shape)
    scores[~allowed] = -1.0
    return scores.argmax(axis=-1)


def sample_seen_colors(rng, shapes):
    """A colour per shape kind, uniform among the colours seen with it."""
    allowed = SEEN[:, shapes].T
    scores = rng.random(allowed.shape)
    scores[~allowed] = -1.0
    return scores.argmax(axis=-1)


def sample_held_out(rng, size):
    """`size` held-out (color, shape) pairs, uniformly."""
    pairs = _HELD_OUT[rng.integers(len(_HELD_OUT), size=size)]
    return pairs[..., 0], pairs[..., 1]


def held_out_color(shapes):
    """The held-out colour of each shape kind."""
    lookup = np.empty(len(SHAPES), "int64")
    lookup[_HELD_OUT[:, 1]] = _HELD_OUT[:, 0]
    return lookup[shapes]


def jittered_colors(rng, colors):
    """RGB values of palette indices `colors` (any shape), slightly jittered."""
    rgb = COLOR_VALUES[colors]
    rgb = rgb + rng.uniform(-COLOR_JITTER, COLOR_JITTER, rgb.shape).astype("float32")
    return np.clip(rgb, 0.0, 1.0)


def backgrounds(rng, num):
    """Dark grey background colours, shape (num, 3)."""
    gray = rng.uniform(*BACKGROUND_RANGE, size=(num, 1)).astype("float32")
    return np.repeat(gray, 3, axis=1)


def radii(image_size):
    """(small, large) radii for shapes that must fit in a grid cell."""
    cell = image_size / GRID_SIZE
    return 0.2 * cell, 0.36 * cell


def grid_scene(rng, num, num_shapes, image_size, max_shapes=3):
    """Positions and sizes of up to `max_shapes` shapes in distinct grid cells.

    Shapes never overlap: each stays inside its own cell.

    Returns:
        dict of arrays with first dimension `num` and slot dimension
        `max_shapes`: `present` bool, `rows`/`cols` int (grid cell), `sizes`
        int (index in SIZES), `radius`, `center_x`, `center_y` float32 (pixels).
    """
    cell = image_size / GRID_SIZE
    cells = np.argsort(rng.random((num, GRID_SIZE * GRID_SIZE)), axis=1)[:, :max_shapes]
    rows, cols = cells // GRID_SIZE, cells % GRID_SIZE
    sizes = rng.integers(len(SIZES), size=(num, max_shapes))
    radius = np.array(radii(image_size), "float32")[sizes]
    # Keep a one pixel margin inside the cell.
    slack = np.maximum(cell / 2 - MAX_EXTENT * radius - 1.0, 0.0)
    offsets = rng.uniform(-1.0, 1.0, (num, max_shapes, 2)) * slack[..., None]
    present = np.arange(max_shapes)[None, :] < np.asarray(num_shapes)[:, None]
    return {
        "present": present,
        "rows": rows,
        "cols": cols,
        "sizes": sizes,
        "radius": radius,
        "center_x": ((cols + 0.5) * cell + offsets[..., 0]).astype("float32"),
        "center_y": ((rows + 0.5) * cell + offsets[..., 1]).astype("float32"),
    }


def _shape_mask(kind, dx, dy, r):
    """Pixels inside one kind of shape; dx (m,1,S), dy (m,S,1), r (m,1,1)."""
    if kind == 0:  # circle
        return dx * dx + dy * dy <= r * r
    if kind == 1:  # square
        half = _EXTENT[1] * r
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if kind == 2:  # triangle, apex up; the centre pixel is inside
        return (dy <= 0.8 * r) & (np.abs(dx) * 1.8 <= dy + r)
    # diamond
    return np.abs(dx) + np.abs(dy) <= _EXTENT[3] * r


def render(background, center_x, center_y, radius, shapes, rgb, visible, image_size):
    """Renders flat shapes on flat backgrounds.

    Slots are drawn in order, so a later slot is on top of an earlier one.

    Args:
        background: float32 (m, 3).
        center_x, center_y, radius: float32 (m, k), pixels.
        shapes: int (m, k), index in SHAPES.
        rgb: float32 (m, k, 3).
        visible: bool (m, k).
        image_size: int.

    Returns:
        float32 (m, image_size, image_size, 3) in [0, 1].
    """
    num, slots = shapes.shape
    images = np.empty((num, image_size, image_size, 3), "float32")
    images[:] = background[:, None, None, :]
    coords = np.arange(image_size, dtype="float32") + 0.5  # pixel centres
    for slot in range(slots):
        for kind in range(len(SHAPES)):
            index = np.flatnonzero(visible[:, slot] & (shapes[:, slot] == kind))
            if index.size == 0:
                continue
            dx = coords[None, None, :] - center_x[index, slot][:, None, None]
            dy = coords[None, :, None] - center_y[index, slot][:, None, None]
            mask = _shape_mask(kind, dx, dy, radius[index, slot][:, None, None])
            image_index, ys, xs = np.nonzero(mask)
            images[index[image_index], ys, xs] = rgb[index[image_index], slot]
    return images


def nearest_color(rgb):
    """Index in COLORS of the palette colour nearest to each RGB value."""
    rgb = np.asarray(rgb, "float32")
    distances = np.linalg.norm(rgb[..., None, :] - COLOR_VALUES, axis=-1)
    return distances.argmin(axis=-1)


def random_scenes(rng, num, image_size, unseen, max_shapes):
    """`num` still images of 1 to `max_shapes` coloured shapes on a grid.

    With `unseen`, the first shape of every image is a held-out
    (colour, shape) pair; otherwise no held-out pair is drawn.

    Returns:
        `(scene, colors, shapes, images)`: the `grid_scene` dict, colour and
        shape indices `(num, max_shapes)` (-1 where absent), and float32
        images `(num, image_size, image_size, 3)` in [0, 1].
    """
    num_shapes = rng.integers(1, max_shapes + 1, size=num)
    scene = grid_scene(rng, num, num_shapes, image_size, max_shapes)
    colors = rng.integers(len(COLORS), size=(num, max_shapes))
    shapes = sample_seen_shapes(rng, colors)
    if unseen:
        colors[:, 0], shapes[:, 0] = sample_held_out(rng, num)
    present = scene["present"]
    colors, shapes = np.where(present, colors, -1), np.where(present, shapes, -1)
    images = render(
        backgrounds(rng, num),
        scene["center_x"],
        scene["center_y"],
        scene["radius"],
        shapes,
        jittered_colors(rng, np.maximum(colors, 0)),
        present,
        image_size,
    )
    return scene, colors, shapes, images
