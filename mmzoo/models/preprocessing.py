"""How a model takes its preprocessor: the checks every family shares."""

# mmzoo's `TextTokenizer` reserves these ids (`[START]`, `[END]`, `[PAD]`):
# the ids a model uses when it has no preprocessor to read them from.
MMZOO_SPECIAL_IDS = {"start_token_id": 2, "end_token_id": 3, "pad_token_id": 0}


def special_ids_from(preprocessor, start_token_id, end_token_id, pad_token_id):
    """`(start, end, pad)`: the preprocessor's tokenizer's ids, or mmzoo's.

    An id given explicitly must agree with the tokenizer's.
    """
    given = {
        "start_token_id": start_token_id,
        "end_token_id": end_token_id,
        "pad_token_id": pad_token_id,
    }
    if preprocessor is None or not preprocessor.tokenizer_ready:
        # No tokenizer, or one whose vocabulary comes from a `.keras` file's
        # assets after the model is made: the ids are the model's config.
        return tuple(
            MMZOO_SPECIAL_IDS[name] if value is None else value for name, value in given.items()
        )
    ids = {name: getattr(preprocessor, name) for name in given}
    for name, value in given.items():
        if value is not None and value != ids[name]:
            raise ValueError(
                f"`{name}` disagrees with the preprocessor's tokenizer, which uses "
                f"{ids[name]}; leave it unset to use the tokenizer's. "
                f"Received: {name}={value!r}"
            )
    return tuple(ids.values())


def attach_preprocessor(preprocessor, preprocessor_class, vocabulary_size=None, **expected):
    """Checks `preprocessor` against the model it is given to, and returns it.

    Args:
        preprocessor: the family's preprocessor, or None.
        preprocessor_class: the family's preprocessor class.
        vocabulary_size: int or None. The model's; the tokenizer's must agree.
        **expected: attributes the preprocessor must share with the model,
            such as `sequence_length=16` (set when the preprocessor's is
            None) or `image_shape=(32, 32, 3)` (of its image converter).
    """
    if preprocessor is None:
        return None
    if not isinstance(preprocessor, preprocessor_class):
        raise ValueError(
            f"`preprocessor` must be a {preprocessor_class.__name__}. "
            f"Received: preprocessor={preprocessor!r}"
        )
    size = preprocessor.vocabulary_size
    if vocabulary_size is not None and size is not None and size != vocabulary_size:
        raise ValueError(
            "The preprocessor's tokenizer and the model disagree on the vocabulary "
            f"size: the tokenizer has {size} tokens, the model vocabulary_size="
            f"{vocabulary_size}. Received: tokenizer.vocabulary_size={size}"
        )
    for name, value in expected.items():
        if name in ("image_shape", "num_frames"):
            converter = preprocessor.video_converter or preprocessor.image_converter
            have = getattr(converter, name, None)
            if name == "image_shape":
                have = None if have is None else tuple(have)
                value = tuple(value)[:2] + (3,)
            if have is not None and have != value:
                raise ValueError(
                    f"The preprocessor's converter and the model disagree on `{name}`. "
                    f"Received: converter {name}={have}, model {name}={value}"
                )
            continue
        have = getattr(preprocessor, name)
        if have is None:
            setattr(preprocessor, name, value)
        elif have != value:
            raise ValueError(
                f"The preprocessor and the model disagree on `{name}`. "
                f"Received: preprocessor {name}={have}, model {name}={value}"
            )
    return preprocessor
