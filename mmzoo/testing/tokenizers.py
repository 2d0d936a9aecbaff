"""Small keras-hub tokenizers made from a few texts, for tests and demos.

BERT's WordPiece (`[CLS]` / `[SEP]`), CLIP's (`</w>` word ends) and
RoBERTa's (`Ġ` for a space) byte-pair encodings, and SentencePiece with
Gemma's or SigLIP's special tokens, each with a vocabulary built from the
words of `texts`: nothing is downloaded.
SentencePiece models need the `sentencepiece` package (a test dependency).
"""

import io
import re

import keras_hub


def _words(texts):
    """The words and punctuation marks of `texts`, as WordPiece and CLIP split them."""
    return sorted({w for text in texts for w in re.findall(r"[a-z]+|[^\sa-z]", text)})


# ------------------------------------------------------------- tokenizers
def bert_tokenizer(texts):
    """A `BertTokenizer` whose vocabulary is the words of `texts`."""
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + _words(texts)
    return keras_hub.models.BertTokenizer(vocabulary=vocabulary)


def _bytes_to_unicode():
    """GPT-2's byte -> printable character table, which CLIP's BPE uses."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def _byte_pair_merge(parts, ranks):
    """Byte-pair encoding of one word: the best-ranked pair first, until none is left."""
    while len(parts) > 1:
        pairs = [(ranks[pair], i) for i, pair in enumerate(zip(parts, parts[1:])) if pair in ranks]
        if not pairs:
            break
        _, i = min(pairs)
        parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
    return parts


def clip_vocabulary_and_merges(words):
    """A CLIP-style vocabulary and merges: every byte character, alone and
    word-final (`</w>`), then merges that make each word one token (each
    word's new merges come after, so they never change an earlier word's
    encoding)."""
    characters = _bytes_to_unicode()
    tokens = characters + [c + "</w>" for c in characters]
    ranks = {}
    for word in words:
        parts = _byte_pair_merge(list(word[:-1]) + [word[-1] + "</w>"], ranks)
        while len(parts) > 1:
            ranks[(parts[0], parts[1])] = len(ranks)
            parts = [parts[0] + parts[1]] + parts[2:]
            tokens.append(parts[0])
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    merges = [f"{a} {b}" for a, b in sorted(ranks, key=ranks.get)]
    return {token: i for i, token in enumerate(dict.fromkeys(tokens))}, merges


def clip_tokenizer(texts, **kwargs):
    """A `CLIPTokenizer` with one token per word of `texts`; `<|endoftext|>`
    has the largest id, as in CLIP's vocabulary."""
    vocabulary, merges = clip_vocabulary_and_merges(_words(texts))
    return keras_hub.models.CLIPTokenizer(vocabulary=vocabulary, merges=merges, **kwargs)


def sentencepiece_proto(texts, **kwargs):
    """A serialized unigram SentencePiece model of about 96 pieces."""
    import sentencepiece  # a test dependency

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=96,
        model_type="unigram", hard_vocab_limit=False, minloglevel=2, **kwargs,
    )
    return model.getvalue()


def gemma_tokenizer(texts):
    """A `GemmaTokenizer` (SentencePiece with `<bos>`, `<eos>`, `<pad>`)."""
    proto = sentencepiece_proto(
        texts, pad_id=0, unk_id=1, bos_id=2, eos_id=3,
        pad_piece="<pad>", unk_piece="<unk>", bos_piece="<bos>", eos_piece="<eos>",
    )
    return keras_hub.models.GemmaTokenizer(proto=proto)


def siglip_tokenizer(texts):
    """A `SigLIPTokenizer`: SentencePiece, no start token, `</s>` ends and pads."""
    proto = sentencepiece_proto(
        texts, pad_id=-1, unk_id=1, bos_id=-1, eos_id=0, unk_piece="<unk>", eos_piece="</s>",
    )
    return keras_hub.models.SigLIPTokenizer(proto=proto)


def roberta_tokenizer(texts):
    """A `RobertaTokenizer` (GPT-2's byte-level BPE, `Ġ` marking a space)
    with one token per word of `texts`, with or without its leading space;
    `<s>`, `<pad>`, `</s>`, `<unk>` and `<mask>` as in RoBERTa's vocabulary."""
    characters = _bytes_to_unicode()
    tokens = ["<s>", "<pad>", "</s>", "<unk>"] + characters
    ranks = {}
    for word in _words(texts):
        for form in (word, "\u0120" + word):  # GPT-2's byte for a space
            parts = _byte_pair_merge(list(form), ranks)
            while len(parts) > 1:
                ranks[(parts[0], parts[1])] = len(ranks)
                parts = [parts[0] + parts[1]] + parts[2:]
                tokens.append(parts[0])
    tokens.append("<mask>")
    merges = [f"{a} {b}" for a, b in sorted(ranks, key=ranks.get)]
    vocabulary = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    return keras_hub.models.RobertaTokenizer(vocabulary=vocabulary, merges=merges)
