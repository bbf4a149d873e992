"""The hotline analysis on its own: accuracy on the labelled set, hard cases, configuration, learning."""

import datetime
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hotline_heldout import HELD_OUT
from hotline_set import CALLS
from hotline_third import THIRD

from asr_service.hotline.analysis import Analyzer, analyze
from asr_service.hotline.config import load_config
from asr_service.hotline.evaluation import run_calls, score
from asr_service.hotline.learning import CategoryModel

# Measured on the 90 labelled calls (see the README); each bound allows one call less than measured.
BOUNDS = {
    "category": 0.988,
    "urgency": 0.988,
    "district": 0.988,
    "request_type": 0.977,
    "referral": 0.988,
    "location": 0.988,
}


@pytest.fixture(scope="module")
def results() -> dict[str, object]:
    return score(run_calls(CALLS, Analyzer.load()))


def test_labelled_set_covers_the_definitions() -> None:
    config = load_config()
    assert len(CALLS) >= 80
    assert {c["category"] for c in CALLS} == set(config.categories)
    assert {c["urgency"] for c in CALLS} == {"高", "中", "低"}
    assert {c["district"] for c in CALLS} - {""} == set(config.districts)
    assert {c["referral"] for c in CALLS} == {None, "110", "119", "120"}


@pytest.mark.parametrize("field", list(BOUNDS))
def test_field_accuracy(results: dict[str, object], field: str) -> None:
    accuracy = results["accuracy"][field]  # type: ignore[index]
    assert accuracy >= BOUNDS[field], results["errors"][field]  # type: ignore[index]


@pytest.mark.parametrize("calls", [HELD_OUT, THIRD], ids=["second set", "third set"])
def test_sets_written_after_the_rules(calls: list[dict[str, object]]) -> None:
    """Written once the rules were done, each first run untuned (see the README for those figures), then their
    missing words added: they now guard against regressions."""
    held_out = score(run_calls(calls, Analyzer.load()))
    accuracy = held_out["accuracy"]
    assert min(accuracy[f] for f in ("category", "urgency", "district", "referral", "location")) >= 0.95, held_out
    assert accuracy["request_type"] >= 0.85, held_out["errors"]


def test_repeat_links(results: dict[str, object]) -> None:
    assert results["repeat_precision"] == 1.0, results["errors"].get("repeat")  # type: ignore[union-attr]
    assert results["repeat_recall"] == 1.0, results["errors"].get("repeat")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("不是煤气泄漏，是邻居家炖肉糊了", {"urgency": "低", "emergency_referral": None, "category": "市政设施"}),
        ("没有人被困，电梯就是不动了，朝阳区望京西园", {"urgency": "低", "emergency_referral": None}),
        ("我闻到好大的煤汽味，在海淀区", {"urgency": "高", "emergency_referral": "119", "category": "市政设施"}),
        ("马路上的井该没了，很危险，丰台区", {"urgency": "高", "category": "市政设施"}),
        ("我哋棟樓部電題壞咗，有人困喺入面", {"urgency": "高", "emergency_referral": "119", "category": "住房物业"}),
        ("上周楼下打架，现在已经结束了", {"emergency_referral": None, "urgency": "低"}),
        ("我的烫伤早就好了，就是想问医药费找谁报", {"emergency_referral": None}),
        ("楼上暖气管爆了，水哗哗往下流", {"category": "住房物业", "urgency": "高"}),
        ("晚上工地施工太吵了，物业也不管", {"category": "环境保护"}),
        ("公司欠薪半年，再不给钱我就跳楼", {"category": "劳动社保", "urgency": "高", "emergency_referral": "110"}),
        ("吃了饭店的菜全家食物中毒了", {"category": "市场监管", "urgency": "高"}),
        ("想问一下养老金怎么领", {"category": "劳动社保", "request_type": "咨询", "urgency": "低"}),
        ("电动车在楼道充电，怕着火", {"category": "公共安全", "urgency": "低"}),
        ("电梯又坏了，我们跟物业反映过好几次了", {"urgency": "中", "request_type": "投诉"}),
        ("我要表扬一下你们的接线员", {"category": "其他", "request_type": "表扬"}),
        ("想问一下居住证怎么办理", {"category": "咨询建议", "request_type": "咨询"}),
        ("亦庄荣华路的路灯不亮", {"district": "大兴区"}),
        ("开发区那边有个工厂晚上偷排废水", {"district": "大兴区", "category": "环境保护", "request_type": "举报"}),
        ("小区门口有个坑", {"location": "", "district": ""}),
        ("5号楼电梯坏了", {"urgency": "低", "emergency_referral": None, "category": "住房物业"}),  # 楼电 is not 漏电
        ("马家堡东路的红绿灯坏了", {"urgency": "低", "emergency_referral": None, "category": "交通出行"}),
        ("我在外地，老家的事想咨询一下", {"location": ""}),
    ],
)
def test_hard_cases(text: str, expected: dict[str, object]) -> None:
    ticket = analyze(text)
    assert {field: getattr(ticket, field) for field in expected} == expected, ticket.keywords


def test_location_is_the_exact_words_and_department_follows_the_district() -> None:
    ticket = analyze("喂，我喺石景山區古城嗰度，條路有個沙井蓋冇咗")
    assert ticket.location == "石景山區古城"
    assert ticket.district == "石景山区"
    assert ticket.department == "石景山区城市管理委员会"
    assert "井盖(井蓋)" in ticket.keywords or "井盖" in ticket.keywords
    assert analyze("朝阳区三里屯有家店卖过期食品").department == "朝阳区市场监督管理局"
    assert analyze("卖过期食品的店").department == "北京市市场监督管理局"  # no district: the city's bureau


def test_speaker_text_keeps_the_citizens_turns() -> None:
    ticket = analyze("坐席：您好，12345，请问有什么可以帮您？市民：我家电梯坏了。坐席：地址是？市民：海淀区万柳。")
    assert ticket.speaker_text == "我家电梯坏了。\n海淀区万柳。"
    assert ticket.category == "住房物业" and ticket.district == "海淀区"
    split = analyze("agent: 您好，请问有什么可以帮您\ncaller: 楼下饭店油烟太大了")
    assert split.speaker_text == "楼下饭店油烟太大了" and split.category == "环境保护"


def test_repeat_needs_same_problem_same_place_within_the_window() -> None:
    first = analyze("朝阳区望京西园三区5号楼电梯坏了", call_id="a", time=datetime.datetime(2026, 11, 1, 9))
    later = datetime.datetime(2026, 11, 20, 9)
    assert analyze("望京西园3区五号楼的电题又停了", call_id="b", time=later, history=[first]).repeat_of == ["a"]
    assert analyze("望京西园三区5号楼楼上漏水", call_id="c", time=later, history=[first]).repeat_of == []
    assert analyze("望京西园四区5号楼电梯坏了", call_id="d", time=later, history=[first]).repeat_of == []
    too_late = datetime.datetime(2026, 12, 5, 9)  # 34 days: outside the 30-day window
    assert analyze("望京西园三区5号楼电梯又坏了", call_id="e", time=too_late, history=[first]).repeat_of == []
    fixed = analyze("望京西园三区5号楼的电梯修好了，谢谢", call_id="f", time=later, history=[first])
    assert fixed.repeat_of == ["a"] and fixed.urgency == "低"


def test_a_deployment_file_replaces_only_its_sections(tmp_path: Path) -> None:
    path = tmp_path / "hotline.yaml"
    path.write_text("districts:\n  滨海新区: [于家堡, 响螺湾]\n", encoding="utf-8")
    config = load_config(path)
    assert list(config.districts) == ["滨海新区"]
    assert config.categories == load_config().categories
    ticket = analyze("于家堡金融区的路灯坏了", config=config)
    assert ticket.district == "滨海新区" and ticket.department == "滨海新区城市管理委员会"


def test_classifier_trained_on_one_half_helps_on_the_other(tmp_path: Path) -> None:
    """Corrections sharpen the rules: trained on the even calls, judged on the odd ones (disjoint)."""
    train = CALLS[::2]
    held_out = CALLS[1::2]
    model = CategoryModel.fit([c["text"] for c in train], [c["category"] for c in train])
    model.save(tmp_path / "model")
    rules = score(run_calls(held_out, Analyzer.load()))["accuracy"]["category"]
    combined_analyzer = Analyzer.load(model_dir=tmp_path / "model")
    combined = score(run_calls(held_out, combined_analyzer))["accuracy"]["category"]
    assert combined >= rules - 0.023  # at most one call of 45 worse
    assert combined_analyzer.analyze("楼道灯坏了").decided_by == "rules+model"


def test_train_command_reads_an_edited_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.csv"
    rows = ["file,text,category"] + [f'{c["call_id"]}.wav,"{c["text"]}",{c["category"]}' for c in CALLS]
    ledger.write_text("\ufeff" + "\n".join(rows), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "asr_service", "hotline", "train", str(ledger), "--out", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "trained on 90" in out.stdout
    assert CategoryModel.load(tmp_path / "m").meta["examples"] == 90


def test_analysis_needs_neither_torch_nor_fastapi() -> None:
    code = (
        "import sys, asr_service.hotline.analysis, asr_service.hotline.report, asr_service.hotline.ledger;"
        "assert not {'torch', 'fastapi'} & set(sys.modules), sorted({'torch', 'fastapi'} & set(sys.modules))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_hostile_text_is_analysed_quickly() -> None:
    for text in ("井盖" * 25_000, "朝阳区" * 16_000, "1号楼" * 12_000, "不是" * 25_000, "\u0000\u202e" * 25_000):
        started = time.perf_counter()
        analyze(text)
        assert time.perf_counter() - started < 5, text[:10]
