"""One optimizer per part of a model: a lower learning rate for pretrained towers."""

import keras


def optimizer_by_part(model, optimizers, default):
    """A `keras.optimizers.MultiOptimizer` that updates each part of `model` with its own optimizer.

    Fine-tuning a pretrained tower usually wants a smaller learning rate than
    the layers trained from scratch (projections, heads, a new decoder).
    Keras' `MultiOptimizer` routes each variable to an optimizer; this picks
    the variables by the model's parts (`model.lora_parts`: `image_encoder`,
    `text_encoder`, `image_projection`, ...), whatever their variable paths
    are (a keras-hub tower's paths do not start with the part's name).

    Works with `model.compile` / `fit` and with `mmzoo.training.Trainer`
    (whose logged `learning_rate` is then the first optimizer's, in the order
    of `optimizers`, then `default`), and the optimizer state is saved in
    the Trainer's checkpoints, so runs resume exactly. Not with a
    `keras.optimizers.LossScaleOptimizer` (`mixed_float16`), which Keras does
    not allow around a `MultiOptimizer`.

    Args:
        model: an mmzoo family model (with `parts`).
        optimizers: dict `{part name: keras.optimizers.Optimizer}`.
        default: `keras.optimizers.Optimizer` for every other trainable
            variable.

    Returns:
        A `keras.optimizers.MultiOptimizer`.

    Example:

    ```python
    model = mmzoo.models.DualEncoder.from_keras_hub("clip_vit_base_patch16")
    optimizer = mmzoo.training.optimizer_by_part(
        model,
        {"image_encoder": keras.optimizers.AdamW(1e-5),
         "text_encoder": keras.optimizers.AdamW(1e-5)},
        default=keras.optimizers.AdamW(1e-3))  # projections and temperature
    model.compile(optimizer=optimizer, loss=mmzoo.losses.CLIPLoss())
    ```
    """
    if not hasattr(model, "parts"):
        raise ValueError(
            "`model` must be an mmzoo family model (with `parts`). Received: model of "
            f"type {type(model).__name__}"
        )
    if not isinstance(optimizers, dict) or not optimizers:
        raise ValueError(
            "`optimizers` must be a non-empty dict {part name: optimizer}. Received: "
            f"optimizers={optimizers!r}"
        )
    for name, optimizer in [*optimizers.items(), ("default", default)]:
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise ValueError(
                f"Each optimizer must be a keras.optimizers.Optimizer. Received: {name}="
                f"{optimizer!r}"
            )
    parts = model.parts(list(optimizers))
    owner, claimed = {}, {}
    for name, part in parts.items():
        for variable in part.trainable_weights:
            if id(variable) in owner:
                raise ValueError(
                    f"Parts {claimed[id(variable)]!r} and {name!r} share the variable "
                    f"{variable.path!r}: give them one optimizer."
                )
            owner[id(variable)], claimed[id(variable)] = optimizers[name], name
    ordered = list(dict.fromkeys([*optimizers.values(), default]))

    def select(variable):
        return owner.get(id(variable), default)

    multi = keras.optimizers.MultiOptimizer(select)
    # Sub-optimizers in a fixed order (the `optimizers` dict's, then the
    # default): checkpoints restore each one's state into the same slot.
    for optimizer in ordered:
        if optimizer not in multi.optimizers:
            multi.optimizers.append(optimizer)
    return multi
