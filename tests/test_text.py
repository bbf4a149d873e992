"""How transcripts read: Chinese punctuation, no spaces inside Chinese, sentence breaks between segments."""

import pytest

from asr_service.text import join_texts, tidy_text


@pytest.mark.parametrize(
    ("raw", "tidy"),
    [
        ("广州市 佛地产 中间协会分析", "广州市佛地产中间协会分析"),
        ("再考一个,就算是非常小的声音", "再考一个，就算是非常小的声音"),
        ("我想问,我在冰海星区有房.", "我想问，我在冰海星区有房。"),
        ("你好 , 请问是12345吗?", "你好，请问是12345吗？"),
        ("我用 iPhone 打的电话", "我用 iPhone 打的电话"),
        ("价格是3.5元", "价格是3.5元"),
        ("And so, my fellow Americans.", "And so, my fellow Americans."),
        ("  two   spaces  ", "two spaces"),
        ("", ""),
    ],
)
def test_segment_text_is_tidied(raw: str, tidy: str) -> None:
    assert tidy_text(raw) == tidy


@pytest.mark.parametrize(
    ("parts", "joined"),
    [
        (["我想问", "我在滨海新区有房"], "我想问，我在滨海新区有房"),
        (["我想问。", "我在滨海新区有房"], "我想问。我在滨海新区有房"),
        (
            ["And so my fellow Americans", "Ask not what your country can do"],
            "And so my fellow Americans. Ask not what your country can do",
        ),
        (["the yellow lamps would", "light up here"], "the yellow lamps would light up here"),
        (["It ended.", "Then"], "It ended. Then"),
        (["好的", "OK"], "好的，OK"),
        (["", "换一首歌", " "], "换一首歌"),
    ],
)
def test_segments_are_joined_with_pause_marks(parts: list[str], joined: str) -> None:
    assert join_texts(parts) == joined
