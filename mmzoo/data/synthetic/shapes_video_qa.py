"""`shapes_video_qa`: short clips of shapes that move, appear or change colour,
with one question per clip from a closed answer vocabulary.

Balance: the question type is drawn first (equal shares), then the answer
uniformly from that type's answers, then a clip that makes the answer true,
with distractor shapes. So the majority answer of a type is right about
1 / (number of answers of the type) of the time (1/6 for colour, 1/4 for shape
and direction, 1/3 for count and 1/4 for order), and the question text alone
does not give the answer away in train/validation/test.
"""

import numpy as np

from mmzoo.data.synthetic import shapes as S

QUESTION_TYPES = ("color", "shape", "direction", "count", "order")
DIRECTIONS = ("left", "right", "up", "down")
COUNTS = ("one", "two", "three")
# The closed answer vocabulary; `answer_ids` index into it.
ANSWERS = S.COLORS + S.SHAPES + DIRECTIONS + COUNTS
_ANSWER_ID = {a: i for i, a in enumerate(ANSWERS)}
MAX_SHAPES = 3
MIN_FRAMES, MAX_FRAMES = 8, 16
CHUNK_SIZE = 64

_QUESTIONS = {
    "color_start": ("what color is the {shape} at the start?",
                    "at the start, what color is the {shape}?"),
    "color_end": ("what color is the {shape} at the end?",
                  "at the end, what color is the {shape}?"),
    "shape": ("what shape is the {color} object?",
              "which shape is {color}?"),
    "direction": ("which way does the {color} {shape} move?",
                  "in which direction does the {color} {shape} move?"),
    "count": ("how many shapes are there at the end?",
              "at the end, how many shapes can you see?"),
    "order": ("which shape appears first?",
              "what shape appears first?"),
}


class _Clip:
    """Per-slot, per-frame parameters of one clip (slot 2 is drawn on top)."""

    def __init__(self, num_frames):
        t, k = num_frames, MAX_SHAPES
        self.center_x = np.zeros((k, t), "float32")
        self.center_y = np.zeros((k, t), "float32")
        self.visible = np.zeros((k, t), bool)
        self.colors = np.zeros((k, t), "int64")
        self.shapes = np.zeros(k, "int64")
        self.radius = np.zeros(k, "float32")
        self.moves = np.full(k, -1, "int64")  # index in DIRECTIONS, -1 static

    def add(self, slot, color, shape, radius, x, y, appear=0):
        self.shapes[slot], self.radius[slot] = shape, radius
        self.colors[slot] = color
        self.center_x[slot], self.center_y[slot] = x, y
        self.visible[slot, appear:] = True


def _seen_colors_of(shape):
    return np.flatnonzero(S.SEEN[:, shape])


def _pick(rng, values):
    return int(values[rng.integers(len(values))])


def _random_combo(rng, exclude_shapes=()):
    """A seen (color, shape) pair with the shape not in `exclude_shapes`."""
    shapes = [s for s in range(len(S.SHAPES)) if s not in exclude_shapes]
    shape = _pick(rng, shapes)
    return _pick(rng, _seen_colors_of(shape)), shape


def _path(rng, image_size, extent, num_frames, direction):
    """x, y per frame: static (direction -1) or a straight move of 0.4 * size."""
    lo, hi = extent, image_size - extent
    if direction < 0:
        x, y = rng.uniform(lo, hi, 2)
        return np.full(num_frames, x), np.full(num_frames, y)
    travel = 0.4 * image_size
    along = np.linspace(0.0, travel, num_frames)
    start = rng.uniform(lo, hi - travel)
    other = rng.uniform(lo, hi)
    name = DIRECTIONS[direction]
    if name in ("left", "right"):
        x = start + along if name == "right" else (hi + lo - start) - along
        return x, np.full(num_frames, other)
    y = start + along if name == "down" else (hi + lo - start) - along
    return np.full(num_frames, other), y


def _free_shapes(rng, clip, slots, combos, image_size, num_frames, directions=None):
    """Adds shapes anywhere in the frame, each static or moving."""
    r_lo, r_hi = 0.1 * image_size, 0.14 * image_size
    for i, (slot, (color, shape)) in enumerate(zip(slots, combos)):
        radius = rng.uniform(r_lo, r_hi)
        if directions is None:
            direction = int(rng.integers(-1, len(DIRECTIONS)))
        else:
            direction = directions[i]
        x, y = _path(rng, image_size, S.MAX_EXTENT * radius + 1, num_frames, direction)
        clip.add(slot, color, shape, radius, x, y)
        clip.moves[slot] = direction


def _grid_shapes(rng, clip, slots, combos, image_size, appear):
    """Adds static shapes in distinct grid cells (they never overlap)."""
    scene = S.grid_scene(rng, 1, [len(slots)], image_size, MAX_SHAPES)
    for i, (slot, (color, shape)) in enumerate(zip(slots, combos)):
        clip.add(
            slot, color, shape, scene["radius"][0, i],
            scene["center_x"][0, i], scene["center_y"][0, i], appear=appear[i],
        )


def _example(rng, question_type, num_frames, image_size, unseen):
    """One clip, question and answer. The target shape is in slot 2."""
    clip = _Clip(num_frames)
    target = MAX_SHAPES - 1
    num_distractors = int(rng.integers(0, MAX_SHAPES))
    distractor_slots = list(range(num_distractors))

    def target_combo(shape=None):
        """The target's (color, shape): held-out in `test_unseen`, else seen."""
        if shape is None:
            if unseen:
                color, shape = S.sample_held_out(rng, 1)
                return int(color[0]), int(shape[0])
            shape = int(rng.integers(len(S.SHAPES)))
        if unseen:
            return int(S.held_out_color(np.array([shape]))[0]), shape
        return _pick(rng, _seen_colors_of(shape)), shape

    if question_type == "color":
        color, shape = target_combo()
        at_end = bool(rng.integers(2))
        # Half of the targets change colour once, mid-clip; the question asks
        # for the colour at the start or at the end.
        other = color
        if rng.random() < 0.5:
            others = [c for c in _seen_colors_of(shape) if c != color]
            other = _pick(rng, others) if others else color
        change = int(rng.integers(2, num_frames - 1))
        _free_shapes(rng, clip, [target], [(color, shape)], image_size, num_frames)
        if at_end:
            clip.colors[target, :change] = other
        else:
            clip.colors[target, change:] = other
        combos = [_random_combo(rng, exclude_shapes=[shape]) for _ in distractor_slots]
        _free_shapes(rng, clip, distractor_slots, combos, image_size, num_frames)
        template = _QUESTIONS["color_end" if at_end else "color_start"]
        question = template[rng.integers(2)].format(shape=S.SHAPES[shape])
        answer = S.COLORS[color]
    elif question_type == "shape":
        shape = int(rng.integers(len(S.SHAPES)))
        color, shape = target_combo(shape=shape)
        _free_shapes(rng, clip, [target], [(color, shape)], image_size, num_frames)
        combos = []
        for _ in distractor_slots:  # The target's colour is unique.
            while True:
                combo = _random_combo(rng)
                if combo[0] != color:
                    break
            combos.append(combo)
        _free_shapes(rng, clip, distractor_slots, combos, image_size, num_frames)
        question = _QUESTIONS["shape"][rng.integers(2)].format(color=S.COLORS[color])
        answer = S.SHAPES[shape]
    elif question_type == "direction":
        direction = int(rng.integers(len(DIRECTIONS)))
        color, shape = target_combo()
        _free_shapes(
            rng, clip, [target], [(color, shape)], image_size, num_frames, [direction]
        )
        # Distractors have other shapes, so "the {color} {shape}" is unique.
        combos = [_random_combo(rng, exclude_shapes=[shape]) for _ in distractor_slots]
        _free_shapes(rng, clip, distractor_slots, combos, image_size, num_frames)
        question = _QUESTIONS["direction"][rng.integers(2)].format(
            color=S.COLORS[color], shape=S.SHAPES[shape]
        )
        answer = DIRECTIONS[direction]
    elif question_type == "count":
        count = int(rng.integers(1, MAX_SHAPES + 1))
        slots = list(range(MAX_SHAPES - count, MAX_SHAPES))
        combos = [_random_combo(rng) for _ in slots]
        if unseen:
            combos[-1] = target_combo()
        # Shapes appear during the first half, so the first frame undercounts.
        appear = rng.integers(0, num_frames // 2 + 1, size=count)
        _grid_shapes(rng, clip, slots, combos, image_size, appear)
        question = _QUESTIONS["count"][rng.integers(2)]
        answer = COUNTS[count - 1]
    elif question_type == "order":
        shape = int(rng.integers(len(S.SHAPES)))
        count = int(rng.integers(2, MAX_SHAPES + 1))
        slots = list(range(MAX_SHAPES - count, MAX_SHAPES))
        others = [s for s in rng.permutation(len(S.SHAPES)) if s != shape][: count - 1]
        combos = [(_pick(rng, _seen_colors_of(s)), int(s)) for s in others]
        combos.append(target_combo(shape=shape))
        first = int(rng.integers(0, num_frames // 2))
        later = rng.choice(np.arange(first + 1, num_frames), count - 1, replace=False)
        _grid_shapes(rng, clip, slots, combos, image_size, list(later) + [first])
        question = _QUESTIONS["order"][rng.integers(2)]
        answer = S.SHAPES[shape]
    else:  # pragma: no cover - QUESTION_TYPES is closed
        raise AssertionError(question_type)
    return clip, question, answer


def generate_chunk(rng, num, image_size, unseen, num_frames=8):
    """One chunk of `shapes_video_qa` (see `generate_shapes_video_qa`)."""
    types = rng.permutation(np.arange(num) % len(QUESTION_TYPES))
    clips, questions, answers = [], [], []
    for i in range(num):
        clip, question, answer = _example(
            rng, QUESTION_TYPES[types[i]], num_frames, image_size, unseen
        )
        clips.append(clip)
        questions.append(question)
        answers.append(answer)

    def stack(name):  # (num, slots, frames) -> (num * frames, slots)
        values = np.stack([getattr(c, name) for c in clips])
        return values.transpose(0, 2, 1).reshape(num * num_frames, MAX_SHAPES)

    shapes = np.stack([c.shapes for c in clips])
    radius = np.stack([c.radius for c in clips])
    colors = stack("colors")
    # One colour jitter per shape, kept in every frame.
    jitter = rng.uniform(-S.COLOR_JITTER, S.COLOR_JITTER, (num, MAX_SHAPES, 3))
    rgb = S.COLOR_VALUES[colors] + np.repeat(jitter, num_frames, axis=0)
    frames = S.render(
        np.repeat(S.backgrounds(rng, num), num_frames, axis=0),
        stack("center_x"),
        stack("center_y"),
        np.repeat(radius, num_frames, axis=0),
        np.repeat(shapes, num_frames, axis=0),
        np.clip(rgb, 0.0, 1.0),
        stack("visible"),
        image_size,
    )
    videos = frames.reshape(num, num_frames, image_size, image_size, 3)
    return {
        "videos": videos,
        "questions": np.array(questions, dtype=object),
        "answers": np.array(answers, dtype=object),
        "answer_ids": np.array([_ANSWER_ID[a] for a in answers], "int32"),
        "question_types": np.array([QUESTION_TYPES[t] for t in types], dtype=object),
        "scene": {
            "center_x": np.stack([c.center_x for c in clips]),
            "center_y": np.stack([c.center_y for c in clips]),
            "visible": np.stack([c.visible for c in clips]),
            "colors": np.stack([c.colors for c in clips]),
            "shapes": shapes,
            "radius": radius,
            "moves": np.stack([c.moves for c in clips]),
        },
    }
