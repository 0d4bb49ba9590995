"""Build a CLIP byte-level BPE tokenizer from a word list, with no download (tests, the offline quickstart)."""

from transformers import CLIPTokenizer


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from the 256 byte values to printable unicode characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    characters = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(code) for code in characters)))


def build_clip_tokenizer(words: list[str] | tuple[str, ...], model_max_length: int = 77) -> CLIPTokenizer:
    """A `CLIPTokenizer` whose vocabulary holds the 512 byte symbols plus one merged token per word in `words`.

    Any text can be tokenised (unknown words fall back to byte symbols); the listed words become single tokens.
    The special tokens `<|startoftext|>` / `<|endoftext|>` are the last two ids (bos, eos; padding uses eos).

    Args:
        words (`list[str]`):
            Lower-case words to give their own token.
        model_max_length (`int`, *optional*, defaults to 77):
            Maximum sequence length, including the two special tokens.
    """
    byte_to_symbol = bytes_to_unicode()
    byte_symbols = list(byte_to_symbol.values())
    vocab: dict[str, int] = {}
    for symbol in byte_symbols + [symbol + "</w>" for symbol in byte_symbols]:
        vocab[symbol] = len(vocab)
    merges: list[tuple[str, str]] = []
    for word in dict.fromkeys(word.lower() for word in words):
        if not word or any(character.isspace() for character in word):
            raise ValueError(f"Every word must be non-empty and contain no whitespace, got {word!r}.")
        encoded = [byte_to_symbol[byte] for byte in word.encode("utf-8")]
        symbols = encoded[:-1] + [encoded[-1] + "</w>"]
        # Merge left to right so that the word ends up as a single token.
        while len(symbols) > 1:
            pair = (symbols[0], symbols[1])
            merged = pair[0] + pair[1]
            if pair not in merges:
                merges.append(pair)
            if merged not in vocab:
                vocab[merged] = len(vocab)
            symbols = [merged] + symbols[2:]
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


__all__ = ["build_clip_tokenizer"]
