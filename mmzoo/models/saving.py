"""The config round trip every mmzoo model shares (`get_config` / `from_config`)."""

import keras


def _is_serialized_object(value):
    return isinstance(value, dict) and "class_name" in value and "config" in value


def model_config(model, **fields):
    """A model's config: its name, trainable flag, dtype policy, `fields`, preprocessor.

    Keras objects among `fields` (towers), and dicts of them (a fusion
    classifier's encoders), are serialized; other values are kept as given.
    `model.preprocessor` (None or the family's preprocessor) goes in as
    `"preprocessor"`.

    Example (in a model's `get_config`):

    ```python
    return model_config(self, image_encoder=self.image_encoder,
                        hidden_dim=self.hidden_dim)
    ```
    """

    def serialize(value):
        if isinstance(value, keras.layers.Layer):
            return keras.saving.serialize_keras_object(value)
        if isinstance(value, dict) and value and all(
            isinstance(item, keras.layers.Layer) for item in value.values()
        ):
            return {key: serialize(item) for key, item in value.items()}
        return value

    config = {
        "name": model.name,
        "trainable": model.trainable,
        "dtype": keras.saving.serialize_keras_object(model.dtype_policy),
    }
    config.update({key: serialize(value) for key, value in fields.items()})
    config["preprocessor"] = serialize(model.preprocessor)
    # A quantized model records which layers are quantized (`CompressionMixin`).
    config.update(getattr(model, "_compression_config", dict)())
    return config


def deserialize_model_config(config):
    """A copy of a `model_config` whose serialized objects are objects again.

    Towers, dicts of towers, the preprocessor and the dtype policy; other
    values are kept as given. The result is the keyword arguments of the
    model's class.

    Example (in a model's `from_config`):

    ```python
    return cls(**deserialize_model_config(config))
    ```
    """
    config = dict(config)
    for key, value in config.items():
        if key == "dtype":
            if isinstance(value, dict):
                config[key] = keras.dtype_policies.deserialize(value)
        elif _is_serialized_object(value):
            config[key] = keras.saving.deserialize_keras_object(value)
        elif isinstance(value, dict) and value and all(
            _is_serialized_object(item) for item in value.values()
        ):
            config[key] = {k: keras.saving.deserialize_keras_object(v) for k, v in value.items()}
    return config


def model_from_config(cls, config):
    """`cls(**deserialize_model_config(config))`, quantized as the config records.

    Example (a model's `from_config`):

    ```python
    return model_from_config(cls, config)
    ```
    """
    config = dict(config)
    quantization = config.pop("quantization", None)
    model = cls(**deserialize_model_config(config))
    if quantization:
        model._restore_quantization(quantization)
    return model
