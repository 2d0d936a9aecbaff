"""Linear-probe evaluation of frozen features (SimCLR's protocol, full batch).

A multinomial logistic regression is trained on the features of a frozen
encoder and scored on held-out features: how linearly separable the classes
are in the representation. Features are standardised with the training
set's mean and standard deviation; the regression is one Keras `Dense`
layer with zero initial weights and an L2 penalty, trained full-batch with
Adam, so the result depends on the features alone (no random
initialisation, no shuffling): the problem is convex and the same inputs
give the same accuracy.
"""

import keras
import numpy as np

from mmzoo.evaluation.classification import classification_report


def _features(values, name):
    array = np.asarray(values, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(
            f"`{name}` must be 2-D `(num_examples, dim)` and non-empty. Received: shape "
            f"{array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains NaN or infinite values. Received: shape {array.shape}")
    return array


def _labels(values, name, num_examples):
    array = np.asarray(values)
    if array.shape != (num_examples,) or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"`{name}` must be integer class indices, one per example ({num_examples}). "
            f"Received: shape {array.shape}, dtype {array.dtype}"
        )
    if array.min() < 0:
        raise ValueError(f"`{name}` must be >= 0. Received: min {array.min()}")
    return array.astype(np.int32)


def linear_probe(
    train_features,
    train_labels,
    test_features,
    test_labels,
    l2=1e-4,
    steps=500,
    learning_rate=0.05,
):
    """Accuracy of a logistic regression on frozen features.

    Args:
        train_features: array-like `(num_train, dim)`.
        train_labels: int array-like `(num_train,)`, class indices.
        test_features: array-like `(num_test, dim)`.
        test_labels: int array-like `(num_test,)`.
        l2: float >= 0. L2 penalty on the weights (per example, as
            `keras.regularizers.L2` adds it to the mean loss).
        steps: int. Full-batch Adam steps.
        learning_rate: float. Adam's learning rate.

    Returns:
        dict: `accuracy` (test), `train_accuracy`, and `report`, the test
        set's `classification_report`.

    Example:

    ```python
    encoder = simclr.encoder            # a trained TwoViewEncoder's image tower
    train_x = encoder.predict(train_images)["pooled_output"]
    test_x = encoder.predict(test_images)["pooled_output"]
    mmzoo.evaluation.linear_probe(train_x, train_labels, test_x, test_labels)["accuracy"]
    ```
    """
    train_x = _features(train_features, "train_features")
    test_x = _features(test_features, "test_features")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            "Train and test features must have the same dimension. Received: shapes "
            f"{train_x.shape} and {test_x.shape}"
        )
    train_y = _labels(train_labels, "train_labels", len(train_x))
    test_y = _labels(test_labels, "test_labels", len(test_x))
    if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not l2 >= 0:
        raise ValueError(f"`l2` must be a float >= 0. Received: l2={l2!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive int. Received: steps={steps!r}")
    num_classes = int(max(train_y.max(), test_y.max())) + 1

    mean = train_x.mean(axis=0)
    std = train_x.std(axis=0) + 1e-6
    train_x = (train_x - mean) / std
    test_x = (test_x - mean) / std
    inputs = keras.Input((train_x.shape[1],))
    logits = keras.layers.Dense(
        num_classes, kernel_initializer="zeros",
        kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
    )(inputs)
    model = keras.Model(inputs, logits, name="linear_probe")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    # One epoch of `steps` full batches (an epoch per step costs Keras's
    # per-epoch overhead `steps` times); a generator works on every backend.
    def full_batches():
        while True:
            yield train_x, train_y

    model.fit(full_batches(), steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
    batch = min(len(train_x), 4096)
    train_predictions = np.argmax(model.predict(train_x, batch_size=batch, verbose=0), axis=-1)
    test_predictions = np.argmax(model.predict(test_x, batch_size=batch, verbose=0), axis=-1)
    return {
        "accuracy": float(np.mean(test_predictions == test_y)),
        "train_accuracy": float(np.mean(train_predictions == train_y)),
        "report": classification_report(test_y, test_predictions, zero_division=0.0),
    }
