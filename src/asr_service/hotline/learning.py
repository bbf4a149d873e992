"""Learning from the centre's own corrections: a small classifier that sharpens the rules' category.

Character n-gram TF-IDF and logistic regression (scikit-learn): no word segmentation to get wrong on ASR text, and
fast to fit on a few hundred corrected tickets. It only votes on the category, together with the rules' scores;
danger, negation, referral and place stay with the rules."""

import csv
import datetime
import io
import json
from collections.abc import Iterable
from pathlib import Path

import joblib
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

from asr_service.hotline.config import CATEGORIES, Category, HotlineConfig, load_config
from asr_service.hotline.text import citizen_words, normalize

MODEL_FILE = "category.joblib"
META_FILE = "model.json"
RULE_WEIGHT = 0.5
"""Share of the rules' score distribution in the combined vote; the classifier's probabilities have the rest."""
TEXT_COLUMNS = ("text", "speaker_text", "transcript", "corrected_text")


class TrainingDataError(ValueError):
    pass


class CategoryModel:
    def __init__(self, pipeline: Pipeline, meta: dict[str, object]):
        self.pipeline = pipeline
        self.meta = meta

    @classmethod
    def fit(cls, texts: list[str], categories: list[str], config: HotlineConfig | None = None) -> "CategoryModel":
        config = config or load_config()
        if len(set(categories)) < 2:
            raise TrainingDataError("need corrected tickets of at least two categories")
        features = [normalize(citizen_words(text), config).text for text in texts]
        pipeline = make_pipeline(
            TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=1),
            LogisticRegression(max_iter=2000, C=10.0),
        )
        pipeline.fit(features, categories)
        meta = {
            "examples": len(texts),
            "categories": sorted(set(categories)),
            "trained_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "scikit_learn": sklearn.__version__,
        }
        return cls(pipeline, meta)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.pipeline, directory / MODEL_FILE)
        (directory / META_FILE).write_text(json.dumps(self.meta, ensure_ascii=False, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> "CategoryModel":
        """Only from a directory the operator controls: joblib files are pickles and run code when loaded."""
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        return cls(joblib.load(directory / MODEL_FILE), meta)

    def combine(self, normalized_text: str, rule_scores: dict[Category, int], rule_category: Category) -> Category:
        probabilities = dict(
            zip(self.pipeline.classes_, self.pipeline.predict_proba([normalized_text])[0], strict=True)
        )
        total = sum(rule_scores.values())
        if not total:
            return max(probabilities, key=probabilities.__getitem__)  # type: ignore[return-value]
        votes = {
            category: RULE_WEIGHT * rule_scores.get(category, 0) / total
            + (1 - RULE_WEIGHT) * float(probabilities.get(category, 0.0))
            for category in CATEGORIES
        }
        best = max(votes, key=votes.__getitem__)
        return best if votes[best] > votes[rule_category] else rule_category


def read_corrected_tickets(path: Path) -> tuple[list[str], list[str]]:
    """(texts, categories) from a ledger (`ledger.csv` or `ledger.xlsx`, edited by a supervisor) or corrections
    exported as JSON lines; rows without text or a known category are skipped."""
    rows: Iterable[dict[str, object]]
    if path.suffix.lower() == ".xlsx":
        rows = _xlsx_rows(path)
    elif path.suffix.lower() in (".jsonl", ".json"):
        rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    else:
        rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))
    texts: list[str] = []
    categories: list[str] = []
    for row in rows:
        text = next((str(row[c]) for c in TEXT_COLUMNS if row.get(c)), "")
        category = str(row.get("corrected_category") or row.get("category") or "")
        if text and category in CATEGORIES:
            texts.append(text)
            categories.append(category)
    if not texts:
        raise TrainingDataError(f"{path}: no rows with a text and a category")
    return texts, categories


def _xlsx_rows(path: Path) -> Iterable[dict[str, object]]:
    from openpyxl import load_workbook

    sheet = load_workbook(path, read_only=True).worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    header = [str(cell or "") for cell in next(rows, ())]
    for row in rows:
        yield dict(zip(header, row, strict=False))
