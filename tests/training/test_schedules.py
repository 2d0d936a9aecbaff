import numpy as np

from mmzoo.testing import TestCase
from mmzoo.training import warmup_cosine_decay


class WarmupCosineDecayTest(TestCase):
    def test_warms_up_linearly_then_decays_along_a_cosine(self):
        schedule = warmup_cosine_decay(1.0, total_steps=12, warmup_steps=4, alpha=0.1)
        values = [float(schedule(step)) for step in range(14)]
        self.assertAllClose(values[:5], [0.0, 0.25, 0.5, 0.75, 1.0], atol=1e-6)
        # Cosine from 1.0 down to alpha over the 8 decay steps.
        for step in range(4, 13):
            cosine = 0.5 * (1 + np.cos(np.pi * (step - 4) / 8))
            self.assertAllClose(values[step], 0.1 + 0.9 * cosine, atol=1e-6)
        self.assertAllClose(values[13], 0.1, atol=1e-6)

    def test_without_warmup_starts_at_the_peak(self):
        schedule = warmup_cosine_decay(2.0, total_steps=10)
        self.assertAllClose(float(schedule(0)), 2.0)
        self.assertAllClose(float(schedule(10)), 0.0, atol=1e-6)

    def test_warmup_must_end_before_the_last_step(self):
        with self.assertRaisesRegex(ValueError, "Received: warmup_steps=10 with total_steps=10"):
            warmup_cosine_decay(1.0, total_steps=10, warmup_steps=10)

    def test_total_steps_must_be_positive(self):
        with self.assertRaisesRegex(ValueError, "Received: total_steps=0"):
            warmup_cosine_decay(1.0, total_steps=0)
