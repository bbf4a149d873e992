"""Language of a piece of transcript text, for an engine (GLM-ASR) that has no language token."""

import re
from typing import Literal

import opencc

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_CANTONESE = re.compile(r"[嘅咗啲唔冇喺嘢佢哋咁乜嚟俾睇揾攞]")
"""Characters written in Cantonese but (almost) never in Mandarin."""


def guess_language(text: str) -> str | None:
    cjk = len(_CJK.findall(text))
    latin_words = len(re.findall(r"[A-Za-z]+", text))
    if cjk == 0 and latin_words == 0:
        return None
    if cjk >= latin_words:
        return "yue" if _CANTONESE.search(text) else "zh"
    return "en"


class ChineseScript:
    """Converts Chinese text to one script (OpenCC), so call-takers read one writing system whatever the model."""

    _CONFIGS = {"simplified": "t2s", "traditional": "s2t"}

    def __init__(self, script: Literal["simplified", "traditional", "as_recognised"]) -> None:
        config = self._CONFIGS.get(script)
        self._converter = opencc.OpenCC(config) if config else None

    def convert(self, text: str) -> str:
        if self._converter is None or not _CJK.search(text):
            return text
        return self._converter.convert(text)
