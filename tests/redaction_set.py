"""A labelled set for the redaction: sentences as a hotline transcript writes them, with the personal data marked.

Two parts. Generated sentences put valid numbers (checksummed ID cards, Luhn-valid cards, real mobile prefixes) into
call-centre phrasings, read out the ways callers read them (Arabic or Chinese digits, 幺 for 1, groups split by
commas, spaces and fillers, full-width digits, +86); the labels come from where the number was put, not from the
redactor. Hand-written sentences hold what must not be masked (dates, amounts, work-order numbers, addresses, the
hotline's own number, an ID with a wrong check digit) and awkward real phrasings. Shared by `scripts/eval_redaction.py`
and `tests/test_redaction.py`.
"""

import random
from collections import Counter
from dataclasses import dataclass, field

from asr_service.redaction import KINDS, Redaction, is_luhn_valid, redact

CHINESE = dict(zip("0123456789", "零一二三四五六七八九", strict=True))


@dataclass(frozen=True)
class Labelled:
    text: str
    spans: tuple[Redaction, ...]


@dataclass
class KindScore:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0


@dataclass
class Evaluation:
    kinds: dict[str, KindScore] = field(default_factory=lambda: {kind: KindScore() for kind in KINDS})
    misses: list[str] = field(default_factory=list)


def score(items: list[Labelled]) -> Evaluation:
    """A found span counts when it has the labelled kind and covers the labelled span, at most 4 characters wider
    (a filler or separator taken along)."""
    evaluation = Evaluation()
    for item in items:
        found = redact(item.text).redactions
        matched: set[int] = set()
        for gold in item.spans:
            hit = next(
                (
                    i
                    for i, r in enumerate(found)
                    if i not in matched
                    and r.kind == gold.kind
                    and r.start <= gold.start
                    and r.end >= gold.end
                    and (r.end - r.start) <= (gold.end - gold.start) + 4
                ),
                None,
            )
            if hit is None:
                evaluation.kinds[gold.kind].false_negatives += 1
                evaluation.misses.append(f"missed {gold.kind} {item.text[gold.start : gold.end]!r} in {item.text!r}")
            else:
                matched.add(hit)
                evaluation.kinds[gold.kind].true_positives += 1
        for i, r in enumerate(found):
            if i not in matched:
                evaluation.kinds[r.kind].false_positives += 1
                evaluation.misses.append(f"wrongly masked {r.kind} {item.text[r.start : r.end]!r} in {item.text!r}")
    return evaluation


def id_card(rng: random.Random) -> str:
    region = rng.choice(["110101", "310104", "440305", "320106", "510107", "120103", "330106"])
    born = f"{rng.randint(1940, 2010)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body = region + born + f"{rng.randint(0, 999):03d}"
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def mobile(rng: random.Random) -> str:
    return (
        rng.choice(["13", "15", "17", "18", "19", "16", "14"])
        + str(rng.randint(0, 9))
        + f"{rng.randint(0, 10**8 - 1):08d}"
    )


def bank_card(rng: random.Random) -> str:
    length = rng.choice([16, 19, 19, 18])
    body = rng.choice(["6222", "6217", "6228", "6225", "4367", "6212"]) + "".join(
        str(rng.randint(0, 9)) for _ in range(length - 5)
    )
    return next(body + d for d in "0123456789" if is_luhn_valid(body + d))


def landline(rng: random.Random) -> str:
    area = rng.choice(["010", "021", "020", "022", "0755", "0571", "0512", "0371"])
    local = str(rng.randint(2, 8)) + "".join(
        str(rng.randint(0, 9)) for _ in range(7 if len(area) == 3 else rng.choice([6, 7]))
    )
    return f"{area}-{local}"


PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def plate(rng: random.Random) -> str:
    """As written (粤B·D12345, 京A12345) or as heard (苏E 一二三四五, new-energy plates have six characters)."""
    tail = "".join(rng.choice(PLATE_LETTERS[:6] + "0123456789" * 3) for _ in range(rng.choice([5, 5, 6])))
    if rng.random() < 0.3:
        tail = "".join(CHINESE.get(c, c) for c in tail)
    return rng.choice(PROVINCES) + rng.choice(PLATE_LETTERS) + rng.choice(["", "·", " "]) + tail


def email(rng: random.Random) -> str:
    local = rng.choice(["zhangwei", "li.na", "wang_fang88", "chen2019", "liuyang", "hotline.user"])
    if rng.random() < 0.3:
        local = str(rng.randint(10**6, 10**10))  # QQ mail
    domain, tld = rng.choice([("qq", "com"), ("163", "com"), ("126", "com"), ("gmail", "com"), ("sina", "cn")])
    if rng.random() < 0.5:
        return f"{local}@{domain}.{tld}"
    at, dot = rng.choice([(" at ", " dot "), ("艾特", "点"), ("@", "点")])
    return f"{local}{at}{domain}{dot}{tld}"


def grouped(digits: str, sizes: list[int], joiner: str) -> str:
    parts, i = [], 0
    for size in sizes:
        parts.append(digits[i : i + size])
        i += size
    if i < len(digits):
        parts.append(digits[i:])
    return joiner.join(p for p in parts if p)


def spoken(digits: str, rng: random.Random, sizes: list[int]) -> str:
    """One way a caller's number comes out of the recogniser."""
    style = rng.choice(["arabic", "arabic-grouped", "chinese", "yao", "chinese-grouped", "filler", "fullwidth"])
    if style == "arabic":
        return digits
    if style == "arabic-grouped":
        return grouped(digits, sizes, rng.choice([" ", "-", "，"]))
    if style == "fullwidth":
        return "".join(chr(0xFF10 + int(d)) if d.isdigit() else d for d in digits)
    chinese = "".join(CHINESE.get(d, d) for d in digits)
    if style == "yao":
        chinese = chinese.replace("一", "幺")
    if style == "chinese":
        return chinese
    if style == "chinese-grouped":
        return grouped(chinese, sizes, "，")
    return grouped(chinese, sizes, rng.choice(["，呃，", "，那个", " 嗯 ", "，就是"]))


TEMPLATES = {
    "mobile": [
        "我的手机号是{}，麻烦尽快回电。",
        "您好我电话{}",
        "联系人王女士{}。",
        "你打{}找我就行",
        "手机{}，我姓李",
    ],
    "id_card": ["身份证号码是{}。", "我身份证{}，帮我查一下社保。", "证件号{}"],
    "bank_card": ["银行卡号{}，补贴一直没到账。", "打到我卡上{}就行", "卡号是{}"],
    "landline": ["单位座机{}，白天有人。", "我家电话{}", "打这个号{}转人工"],
    "plate": ["车牌号{}的车一直占用消防通道。", "一辆{}的货车半夜拉渣土", "是{}，白色轿车"],
    "email": ["我邮箱是{}，结果发我邮箱。", "发到{}就行", "邮件地址{}"],
}
SIZES = {"mobile": [3, 4, 4], "id_card": [6, 8, 4], "bank_card": [4, 4, 4, 4], "landline": [4]}
MAKERS = {
    "mobile": mobile,
    "id_card": id_card,
    "bank_card": bank_card,
    "landline": landline,
    "plate": plate,
    "email": email,
}
AS_WRITTEN = {"plate", "email"}
"""Kinds put in as made (their makers already vary how they are heard)."""

HAND_WRITTEN: list[tuple[str, list[tuple[str, str]]]] = [
    # (text, [(kind, the exact substring labelled)])
    ("我2023年10月15日打过12345，工单号202310150001还没人管。", []),
    ("小区3栋502室楼上漏水，已经半个月了。", []),
    ("退款3200元，订单编号20240305112233。", []),
    ("一九九八年买的房子，现在二零二四年了还没办证。", []),
    ("一共三五个人，来了两三次。", []),
    ("你们12345热线的电话我打了七八次了。", []),
    ("身份证110101199003074513，我是不是输错了。", []),  # wrong check digit: not an ID card
    ("邮编518000，地址是福田区深南大道6008号。", []),
    ("车牌粤B·D12345的车天天占用消防通道。", [("plate", "粤B·D12345")]),
    ("京A 12345 那辆车又停在盲道上", [("plate", "京A 12345")]),
    ("车牌号是苏E一二三四五，白色的。", [("plate", "苏E一二三四五")]),
    ("我邮箱zhangsan_1990@163.com，结果发我邮箱。", [("email", "zhangsan_1990@163.com")]),
    ("邮箱是 wangfang at qq dot com", [("email", "wangfang at qq dot com")]),
    ("发到 12345678@qq.com 就行", [("email", "12345678@qq.com")]),
    (
        "我手机一三八，呃，一二三四，五六七八，身份证号码是11010519491231002X",
        [
            ("mobile", "一三八，呃，一二三四，五六七八"),
            ("id_card", "11010519491231002X"),
        ],
    ),
    ("电话是13812345678和13987654321都可以", [("mobile", "13812345678"), ("mobile", "13987654321")]),
    ("号码 138 1234 5678 139 8765 4321 两个都打", [("mobile", "138 1234 5678"), ("mobile", "139 8765 4321")]),
    ("+86 139 0000 1111 是我的号", [("mobile", "86 139 0000 1111")]),
    ("我家电话是8765432，下午有人", [("landline", "8765432")]),
    ("他们说拨0755-87654321转3号分机", [("landline", "0755-87654321")]),
    ("幺三九幺幺幺幺二二二二", [("mobile", "幺三九幺幺幺幺二二二二")]),
    ("孩子今年十三岁，上初一。", []),
    ("第一批补贴发了一千二百元。", []),
    ("公交108路和23路都不停了。", []),
    # Harder phrasings, as the recogniser writes them.
    ("电话一三八。一二三四。五六七八，打不通就发短信", [("mobile", "一三八。一二三四。五六七八")]),
    ("手机号码是 一 三 九 零 零 幺 幺 二 二 三 三", [("mobile", "一 三 九 零 零 幺 幺 二 二 三 三")]),
    ("身份证号是 幺幺零幺零五 幺九四九幺二三幺 零零二叉", [("id_card", "幺幺零幺零五 幺九四九幺二三幺 零零二叉")]),
    ("我的号码是一八六然后一二三四然后五六七八", [("mobile", "一八六然后一二三四然后五六七八")]),
    ("卡号 6228 4800 0000 0000 0000 有问题吗", []),  # fails the Luhn check: not a card number
    ("工单号202311220001234567，请查一下进度", []),
    ("快递单号SF1234567890123一直没派送", []),
    ("门牌号是幸福路一二八号，三单元五零二。", []),
    ("区号零七五五，号码八七六五四三二一", [("landline", "零七五五，号码八七六五四三二一")]),
    ("我邮箱 zhang wei at qq dot com", [("email", "zhang wei at qq dot com")]),
    ("我电话138123456，少说了一位？", [("mobile", "138123456")]),
    ("社会信用代码91440300MA5FXXXX1K，是个公司", []),
    ("这个月电费是一百三十八块五", []),
    ("上午十点到十二点之间，一二三号楼停水", []),
]


def hand_written() -> list[Labelled]:
    items = []
    for text, labels in HAND_WRITTEN:
        spans = []
        for kind, part in labels:
            start = text.index(part)
            spans.append(Redaction(kind, start, start + len(part)))  # type: ignore[arg-type]
        items.append(Labelled(text, tuple(spans)))
    return items


def generated(count_per_kind: int = 60, seed: int = 12345) -> list[Labelled]:
    rng = random.Random(seed)
    items = []
    for kind, templates in TEMPLATES.items():
        for _ in range(count_per_kind):
            number = MAKERS[kind](rng)
            if kind in AS_WRITTEN or (kind == "landline" and rng.random() < 0.5):
                said = number
            else:
                said = spoken(number.replace("-", ""), rng, SIZES[kind])
            if kind == "mobile" and rng.random() < 0.1:
                said = "+86 " + said
            template = rng.choice(templates)
            prefix = template.index("{}")
            start = prefix + (1 if said.startswith("+") else 0)
            items.append(Labelled(template.format(said), (Redaction(kind, start, prefix + len(said)),)))  # type: ignore[arg-type]
    return items


def labelled_set() -> list[Labelled]:
    return generated() + hand_written()


def counts(items: list[Labelled]) -> Counter[str]:
    return Counter(span.kind for item in items for span in item.spans)
