"""Learning-rate schedules (thin, validated wrappers around Keras's)."""

import keras


def warmup_cosine_decay(
    peak_learning_rate, total_steps, warmup_steps=0, initial_learning_rate=0.0, alpha=0.0
):
    """Linear warm-up to a peak, then cosine decay: a Keras `CosineDecay`.

    The learning rate rises linearly from `initial_learning_rate` at step 0 to
    `peak_learning_rate` at `warmup_steps`, then follows a half cosine down to
    `alpha * peak_learning_rate` at `total_steps`, and stays there. The step is
    the optimizer's `iterations` (one per optimizer update, so gradient
    accumulation does not stretch the schedule).

    Args:
        peak_learning_rate: float. The rate at the end of the warm-up.
        total_steps: int. Step at which the decay ends (usually the
            training steps).
        warmup_steps: int. Steps of linear warm-up, 0 for none.
        initial_learning_rate: float. The rate at step 0 when warming up.
        alpha: float. Final rate as a fraction of the peak.

    Returns:
        A `keras.optimizers.schedules.CosineDecay`.

    Example:

    ```python
    schedule = mmzoo.training.warmup_cosine_decay(
        peak_learning_rate=1e-3, total_steps=10_000, warmup_steps=500)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=0.05)
    ```
    """
    if not isinstance(total_steps, int) or isinstance(total_steps, bool) or total_steps <= 0:
        raise ValueError(
            f"`total_steps` must be a positive integer. Received: total_steps={total_steps!r}"
        )
    if not isinstance(warmup_steps, int) or not 0 <= warmup_steps < total_steps:
        raise ValueError(
            "`warmup_steps` must be an integer in [0, total_steps). "
            f"Received: warmup_steps={warmup_steps!r} with total_steps={total_steps}"
        )
    if not peak_learning_rate > 0:
        raise ValueError(
            "`peak_learning_rate` must be positive. "
            f"Received: peak_learning_rate={peak_learning_rate!r}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1]. Received: alpha={alpha!r}")
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(
            peak_learning_rate, decay_steps=total_steps, alpha=alpha
        )
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate,
        decay_steps=total_steps - warmup_steps,
        alpha=alpha,
        warmup_target=peak_learning_rate,
        warmup_steps=warmup_steps,
    )
