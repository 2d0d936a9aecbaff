import collections
import re

import numpy as np

import mmzoo.data
from mmzoo.data.synthetic import shapes as S
from mmzoo.testing import TestCase

TARGET = 2  # The slot a question is about (drawn on top).


def majority_accuracy(answers):
    return collections.Counter(answers).most_common(1)[0][1] / len(answers)


def named(words, question):
    """The single word of `words` that `question` names."""
    (word,) = re.findall(rf"\b({'|'.join(words)})\b", question)
    return word


def occupied_cells(frame):
    """Grid cells with bright pixels (count/order clips keep one shape per cell)."""
    size = frame.shape[0]
    bounds = [round(i * size / 3) for i in range(4)]
    foreground = frame.max(axis=-1) > 0.5
    return {
        (r, c)
        for r in range(3)
        for c in range(3)
        if foreground[bounds[r]:bounds[r + 1], bounds[c]:bounds[c + 1]].any()
    }


class ShapesVideoQATest(TestCase):
    def setUp(self):
        super().setUp()
        self.data = mmzoo.data.generate_shapes_video_qa(400, split="validation", seed=5)

    def by_type(self, question_type):
        return np.flatnonzero(self.data["question_types"] == question_type)

    def test_arrays(self):
        self.assertEqual(self.data["videos"].shape, (400, 8, 32, 32, 3))
        self.assertEqual(self.data["videos"].dtype, np.float32)
        self.assertGreaterEqual(self.data["videos"].min(), 0.0)
        self.assertLessEqual(self.data["videos"].max(), 1.0)
        self.assertEqual(self.data["answer_ids"].dtype, np.int32)

    def test_answers_from_closed_vocabulary(self):
        vocabulary = np.array(mmzoo.data.VIDEO_QA_ANSWERS)
        self.assertAllEqual(vocabulary[self.data["answer_ids"]], self.data["answers"])
        self.assertLen(set(mmzoo.data.VIDEO_QA_ANSWERS), len(mmzoo.data.VIDEO_QA_ANSWERS))

    def test_question_types_equally_frequent(self):
        counts = collections.Counter(self.data["question_types"])
        self.assertEqual(set(counts), set(mmzoo.data.VIDEO_QA_QUESTION_TYPES))
        self.assertLessEqual(max(counts.values()) - min(counts.values()), 10)

    def test_majority_answer_is_a_weak_baseline(self):
        data = mmzoo.data.generate_shapes_video_qa(1000, split="train")
        accuracy = {}
        for question_type in mmzoo.data.VIDEO_QA_QUESTION_TYPES:
            answers = data["answers"][data["question_types"] == question_type]
            accuracy[question_type] = majority_accuracy(answers)
        # Measured (train, seed 0, 1000 clips): color 0.24, shape 0.30,
        # direction 0.30, count 0.34, order 0.27.
        for question_type, value in accuracy.items():
            self.assertLessEqual(value, 0.5, msg=f"{question_type}: {accuracy}")

    def test_question_text_alone_is_a_weak_baseline(self):
        # Majority answer per question text, fitted on train, scored on validation.
        train = mmzoo.data.generate_shapes_video_qa(1500, split="train")
        by_question = collections.defaultdict(list)
        for question, answer in zip(train["questions"], train["answers"]):
            by_question[question].append(answer)
        guess = {q: collections.Counter(a).most_common(1)[0][0] for q, a in by_question.items()}
        for question_type in mmzoo.data.VIDEO_QA_QUESTION_TYPES:
            index = self.by_type(question_type)
            correct = [
                guess.get(self.data["questions"][i]) == self.data["answers"][i] for i in index
            ]
            self.assertLessEqual(np.mean(correct), 0.5, msg=question_type)

    def test_color_answers_agree_with_pixels(self):
        scene = self.data["scene"]
        for i in self.by_type("color"):
            frame = -1 if "at the end" in self.data["questions"][i] else 0
            x = int(scene["center_x"][i, TARGET, frame])
            y = int(scene["center_y"][i, TARGET, frame])
            pixel = self.data["videos"][i, frame, y, x]
            self.assertEqual(S.COLORS[S.nearest_color(pixel)], self.data["answers"][i])
            shape = named(S.SHAPES, self.data["questions"][i])
            self.assertEqual(S.SHAPES[scene["shapes"][i, TARGET]], shape)

    def test_some_color_questions_need_the_right_frame(self):
        scene = self.data["scene"]
        changes = [
            scene["colors"][i, TARGET, 0] != scene["colors"][i, TARGET, -1]
            for i in self.by_type("color")
        ]
        self.assertGreater(np.mean(changes), 0.3)

    def test_shape_answers_and_unique_color(self):
        scene = self.data["scene"]
        for i in self.by_type("shape"):
            color = named(S.COLORS, self.data["questions"][i])
            self.assertEqual(S.SHAPES[scene["shapes"][i, TARGET]], self.data["answers"][i])
            visible = scene["visible"][i].any(axis=1)
            colors = [S.COLORS[c] for c in scene["colors"][i, visible, 0]]
            self.assertEqual(colors.count(color), 1, msg=self.data["questions"][i])
            x, y = (int(scene[k][i, TARGET, 0]) for k in ("center_x", "center_y"))
            self.assertEqual(S.COLORS[S.nearest_color(self.data["videos"][i, 0, y, x])], color)

    def test_direction_answers_agree_with_pixels(self):
        scene = self.data["scene"]
        for i in self.by_type("direction"):
            video = self.data["videos"][i]
            color = S.nearest_color(video[0, int(scene["center_y"][i, TARGET, 0]),
                                          int(scene["center_x"][i, TARGET, 0])])
            centroids = []
            for frame in (0, -1):
                # Target-coloured pixels near where the target should be.
                cx, cy = scene["center_x"][i, TARGET, frame], scene["center_y"][i, TARGET, frame]
                ys, xs = np.mgrid[:32, :32] + 0.5
                near = (xs - cx) ** 2 + (ys - cy) ** 2 <= (scene["radius"][i, TARGET] * 1.2) ** 2
                same = (S.nearest_color(video[frame]) == color) & (video[frame].max(-1) > 0.5)
                mask = near & same
                self.assertTrue(mask.any())
                centroids.append((xs[mask].mean(), ys[mask].mean()))
            dx = centroids[1][0] - centroids[0][0]
            dy = centroids[1][1] - centroids[0][1]
            expected = {"left": dx < -5, "right": dx > 5, "up": dy < -5, "down": dy > 5}
            self.assertTrue(expected[self.data["answers"][i]], msg=(dx, dy))

    def test_count_answers_agree_with_pixels(self):
        numbers = {"one": 1, "two": 2, "three": 3}
        fewer_at_start = 0
        for i in self.by_type("count"):
            video = self.data["videos"][i]
            self.assertLen(occupied_cells(video[-1]), numbers[self.data["answers"][i]])
            fewer_at_start += len(occupied_cells(video[0])) < len(occupied_cells(video[-1]))
        self.assertGreater(fewer_at_start, 0)

    def test_order_answers_agree_with_pixels(self):
        scene = self.data["scene"]
        for i in self.by_type("order"):
            video = self.data["videos"][i]
            first_frame = next(t for t in range(8) if occupied_cells(video[t]))
            cells = occupied_cells(video[first_frame])
            self.assertLen(cells, 1)  # one shape appears first, alone
            (row, col), = cells
            cell = 32 / 3
            slots = [
                k for k in range(3)
                if scene["visible"][i, k].any()
                and int(scene["center_y"][i, k, -1] // cell) == row
                and int(scene["center_x"][i, k, -1] // cell) == col
            ]
            self.assertEqual([S.SHAPES[scene["shapes"][i, k]] for k in slots],
                             [self.data["answers"][i]])

    def test_num_frames_and_image_size(self):
        data = mmzoo.data.generate_shapes_video_qa(3, num_frames=16, image_size=24)
        self.assertEqual(data["videos"].shape, (3, 16, 24, 24, 3))

    def test_held_out_pairs_only_in_test_unseen(self):
        held_out = {(S.COLORS.index(c), S.SHAPES.index(s)) for c, s in S.HELD_OUT_COMBINATIONS}
        for split in ("train", "test_unseen"):
            scene = mmzoo.data.generate_shapes_video_qa(200, split=split)["scene"]
            for colors, shapes, visible in zip(scene["colors"], scene["shapes"], scene["visible"]):
                pairs = {
                    (colors[k, t], shapes[k])
                    for k in range(3) for t in range(colors.shape[1]) if visible[k, t]
                }
                target = {(colors[TARGET, t], shapes[TARGET]) for t in range(colors.shape[1])}
                if split == "test_unseen":
                    self.assertTrue(target & held_out)
                else:
                    self.assertFalse(pairs & held_out)
