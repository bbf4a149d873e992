"""Hotwords: names and terms likely in a call, given to the model as context. Bounded and checked before any of it
reaches a tokenizer, for requests, the OpenAI `prompt` and the server-wide list alike."""

import re

MAX_HOTWORDS = 100
"""Terms per request (and in the server list)."""
MAX_HOTWORD_CHARS = 50
"""Characters per term: a name or a street, not a paragraph."""
MAX_HOTWORDS_TEXT_CHARS = 4000
"""The raw hotwords text of a request, before splitting: 10 M characters froze the tokenizer for half a minute."""
_HOTWORD_SEPARATORS = re.compile(r"[,，、;；\n]")
_SPECIAL_TOKEN = re.compile(r"<\||\|>|<\s*/?\s*(?:s|unk|pad|eos|bos)\s*>", re.IGNORECASE)
"""Model control tokens (`<|translate|>`, `<|endoftext|>`, `</s>`): as a hotword they would steer the model."""


def check_hotword(term: str) -> str:
    """One term, or ValueError saying why it cannot be given to a model."""
    if len(term) > MAX_HOTWORD_CHARS:
        raise ValueError(f"a hotword is longer than {MAX_HOTWORD_CHARS} characters: {term[:20]!r}…")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in term):
        raise ValueError("a hotword holds a lone surrogate (not valid Unicode text)")
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in term):
        raise ValueError("a hotword holds control characters")
    if _SPECIAL_TOKEN.search(term):
        raise ValueError(f"a hotword may not hold model control tokens such as <|...|>: {term[:30]!r}")
    return term


def split_hotwords(value: object) -> list[str]:
    """Hotwords arrive as a list, a comma-separated string (ASCII or Chinese commas), or repeated form fields.
    Bounded and checked here, before any of it reaches a tokenizer (ValueError when it cannot)."""
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_HOTWORDS:
        raise ValueError(f"at most {MAX_HOTWORDS} hotwords")
    if sum(len(item) for item in items if isinstance(item, str)) > MAX_HOTWORDS_TEXT_CHARS:
        raise ValueError(f"the hotwords are longer than {MAX_HOTWORDS_TEXT_CHARS} characters in all")
    words: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError("hotwords must be strings")
        words += [check_hotword(w.strip()) for w in _HOTWORD_SEPARATORS.split(item) if w.strip()]
    if len(words) > MAX_HOTWORDS:
        raise ValueError(f"at most {MAX_HOTWORDS} hotwords")
    return list(dict.fromkeys(words))
