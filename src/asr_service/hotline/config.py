"""The operator's tuning file: lexicons, negations, the jurisdiction table, as one validated value.

A deployment's YAML (`ASR_HOTLINE_CONFIG`) may give only some sections; each section it gives replaces the default's
section of that name, and every other section comes from the default shipped with the package."""

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default.yaml")
DEFAULT_WEIGHT = 2

Category = Literal["市政设施", "住房物业", "环境保护", "交通出行", "教育服务", "医疗卫生", "劳动社保", "市场监管",
                   "公共安全", "咨询建议", "其他"]  # fmt: skip
CATEGORIES: tuple[Category, ...] = Category.__args__  # type: ignore[attr-defined]
Urgency = Literal["高", "中", "低"]
RequestType = Literal["咨询", "求助", "投诉", "举报", "建议", "表扬"]
REQUEST_TYPES: tuple[RequestType, ...] = RequestType.__args__  # type: ignore[attr-defined]
Referral = Literal["110", "119", "120"]


class CategoryRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    department: str = Field(description="The bureau, with `{district}` (朝阳区) and `{short}` (朝阳) filled in.")
    city_department: str | None = Field(default=None, description="Where calls go when no district is known.")
    keywords: dict[str, int] = Field(description="Keyword → weight; a plain list gets weight 2 each.")

    @field_validator("keywords", mode="before")
    @classmethod
    def _weights(cls, value: object) -> object:
        if isinstance(value, list):
            return {str(word): DEFAULT_WEIGHT for word in value}
        if isinstance(value, dict):
            return {str(word): weight for word, weight in value.items()}
        return value


class HotlineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    city: str
    categories: dict[Category, CategoryRules]
    fallback_category: Category
    question_category: Category
    urgency: dict[Literal["高", "中"], list[str]]
    negations: list[str]
    hedges: list[str]
    resolutions: list[str]
    past_markers: list[str]
    ongoing_markers: list[str]
    request_types: dict[RequestType, list[str]]
    default_request_types: dict[Category, RequestType]
    praise_words: list[str]
    emergency: dict[Referral, list[str]]
    problems: dict[str, list[str]]
    spoken_forms: dict[str, str]
    fillers: list[str]
    vague_places: list[str]
    districts: dict[str, list[str]]

    @field_validator("categories")
    @classmethod
    def _all_categories(cls, value: dict[Category, CategoryRules]) -> dict[Category, CategoryRules]:
        missing = set(CATEGORIES) - set(value)
        if missing:
            raise ValueError(f"categories must name all 11 categories; missing {sorted(missing)}")
        return value

    def __hash__(self) -> int:
        """By identity: derived tables (compiled patterns, matchers) are cached per loaded configuration."""
        return id(self)

    def department_for(self, category: Category, district: str) -> str:
        rules = self.categories[category]
        if not district:
            return rules.city_department or rules.department.format(district=self.city, short="")
        short = district.removesuffix("区") if len(district) > 2 else district
        return rules.department.format(district=district, short=short)


def _read_yaml(path: Path) -> dict[str, object]:
    with path.open(encoding="utf-8") as file:
        data = yaml.safe_load(file) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections")
    return data


def load_config(path: Path | str | None = None) -> HotlineConfig:
    """The default configuration, with the sections of `path` (if given) in place of the default's."""
    return _load_config(str(path) if path else None)


@cache
def _load_config(path: str | None) -> HotlineConfig:
    data = _read_yaml(DEFAULT_CONFIG_PATH)
    if path:
        data.update(_read_yaml(Path(path)))
    return HotlineConfig.model_validate(data)
