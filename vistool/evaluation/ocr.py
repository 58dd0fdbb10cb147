"""OCR: reader for image + ground-truth text, and CER / WER / exact-match scoring.

Annotation format (JSONL, one object per line; image paths relative to the file's folder
unless ``images_dir`` is given)::

    {"id": "receipt-01", "image": "images/receipt-01.png", "text": "TOTAL 12.50"}

``id`` is optional (default: the line number, from 0); ``file_name`` is accepted for
``image``. Predictions are a mapping id -> text, or a JSONL of ``{"id", "text"}`` (or
``"prediction"``) for the CLI. A missing or non-string prediction scores as the empty
string and counts as a format error.

Normalisation (``Normalization``, applied to reference and prediction alike, in order):
Unicode NFKC (on by default: full-width forms, ligatures, compatibility characters),
case-fold (off by default), punctuation removal (off: Unicode category P*), whitespace
collapse (on: every run of whitespace becomes one space, ends stripped). Whitespace is
kept as a character for CER (the jiwer convention), so ``"ab"`` vs ``"a b"`` is one
insertion.

Metrics:

- ``cer`` / ``wer``: corpus level, total edit operations (substitutions + deletions +
  insertions, from jiwer's alignment) over the total number of reference characters /
  words. This is the figure OCR papers usually report.
- ``mean_cer`` / ``mean_wer``: the per-sample rates averaged over samples. For an empty
  reference a sample's rate is 0 when the prediction is empty too, else 1.
- ``exact_match``: share of samples whose normalised prediction equals the normalised
  reference.

CLI::

    python -m vistool.evaluation.ocr score GT.jsonl PRED.jsonl [--casefold] [--no-nfkc] [--strip-punctuation] [--report out/ocr]
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jiwer

from vistool.evaluation.common import align_predictions, load_predictions, ratio, read_jsonl, resolve_image, take
from vistool.evaluation.report import emit

PREDICTION_KEYS = ("text", "prediction")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Normalization:
    """How texts are normalised before comparison (see the module docstring for the order)."""

    nfkc: bool = True
    casefold: bool = False
    strip_punctuation: bool = False
    collapse_whitespace: bool = True


def normalize_text(text: str, norm: Normalization = Normalization()) -> str:
    """Return ``text`` normalised by ``norm``: NFKC, case-fold, punctuation removal, whitespace collapse."""
    if norm.nfkc:
        text = unicodedata.normalize("NFKC", text)
    if norm.casefold:
        text = text.casefold()
    if norm.strip_punctuation:
        text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    if norm.collapse_whitespace:
        text = _WHITESPACE.sub(" ", text).strip()
    return text


@dataclass
class OcrSample:
    """One OCR task: read all the text in ``image``; ``text`` is the ground truth."""

    id: str
    image: Path
    text: str


def read_ocr(path: str | Path, images_dir: str | Path | None = None, limit: int | None = None) -> list[OcrSample]:
    """Read an OCR annotation JSONL (see the module docstring) and return its samples.

    ``images_dir`` defaults to the file's folder; ``limit`` keeps the first N samples.
    Raises ``ValueError`` for a line without an image or without a string ``text``.
    """
    path = Path(path)
    folder = Path(images_dir) if images_dir is not None else path.parent
    samples = []
    for i, r in enumerate(read_jsonl(path)):
        image = r.get("image", r.get("file_name"))
        if not image or not isinstance(r.get("text"), str):
            raise ValueError(f"{path}: record {i} needs 'image' and a string 'text'")
        samples.append(OcrSample(id=str(r.get("id", i)), image=resolve_image(image, folder), text=r["text"]))
    return take(samples, limit)


def _rate(errors: int, total: int) -> float:
    if total:
        return errors / total
    return 0.0 if errors == 0 else 1.0


@dataclass
class OcrScore:
    """OCR result: corpus ``cer``/``wer``, ``mean_cer``/``mean_wer``, ``exact_match`` rate, counts.

    ``per_sample`` holds ``{"id", "cer", "wer", "exact", "format_error"}`` per sample.
    """

    n: int
    cer: float
    wer: float
    mean_cer: float | None
    mean_wer: float | None
    exact_match: float | None
    format_errors: int
    format_error_rate: float | None
    reference_chars: int
    reference_words: int
    normalization: dict[str, bool]
    per_sample: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the metrics dict used by reports (without ``per_sample``)."""
        out = asdict(self)
        del out["per_sample"]
        return out


def score_texts(
    references: Sequence[str],
    predictions: Sequence[Any],
    norm: Normalization = Normalization(),
    ids: Sequence[str] | None = None,
) -> OcrScore:
    """Score predicted texts against reference texts (same order) and return an ``OcrScore``.

    A prediction that is not a string (e.g. None) is scored as "" and counted as a format
    error. ``ids`` label the per-sample entries (default: positions).
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    ids = list(ids) if ids is not None else [str(i) for i in range(len(references))]
    char_errors = word_errors = ref_chars = ref_words = exact = format_errors = 0
    per_sample: list[dict[str, Any]] = []
    for sid, ref, pred in zip(ids, references, predictions):
        bad = not isinstance(pred, str)
        format_errors += bad
        r, h = normalize_text(ref, norm), normalize_text("" if bad else pred, norm)
        chars = jiwer.process_characters(r, h)
        words = jiwer.process_words(r, h)
        c_err = chars.substitutions + chars.deletions + chars.insertions
        w_err = words.substitutions + words.deletions + words.insertions
        c_ref = chars.substitutions + chars.deletions + chars.hits
        w_ref = words.substitutions + words.deletions + words.hits
        char_errors, word_errors, ref_chars, ref_words = char_errors + c_err, word_errors + w_err, ref_chars + c_ref, ref_words + w_ref
        exact += r == h
        per_sample.append({"id": sid, "cer": _rate(c_err, c_ref), "wer": _rate(w_err, w_ref), "exact": r == h, "format_error": bad})
    n = len(references)
    return OcrScore(
        n=n,
        cer=_rate(char_errors, ref_chars),
        wer=_rate(word_errors, ref_words),
        mean_cer=ratio(sum(p["cer"] for p in per_sample), n),
        mean_wer=ratio(sum(p["wer"] for p in per_sample), n),
        exact_match=ratio(exact, n),
        format_errors=format_errors,
        format_error_rate=ratio(format_errors, n),
        reference_chars=ref_chars,
        reference_words=ref_words,
        normalization=asdict(norm),
        per_sample=per_sample,
    )


def score_ocr(
    samples: Sequence[OcrSample],
    predictions: Mapping[str, Any] | Sequence[Any],
    norm: Normalization = Normalization(),
) -> OcrScore:
    """Score OCR predictions (mapping id -> text, or a sequence aligned with ``samples``); return an ``OcrScore``."""
    return score_texts([s.text for s in samples], align_predictions(samples, predictions), norm, [s.id for s in samples])


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``score GT.jsonl PRED.jsonl`` prints a markdown report. Returns 0."""
    parser = argparse.ArgumentParser(prog="python -m vistool.evaluation.ocr", description="OCR evaluation (CER, WER, exact match)")
    sub = parser.add_subparsers(dest="command", required=True)
    score_p = sub.add_parser("score", help="score predicted texts")
    score_p.add_argument("gt")
    score_p.add_argument("predictions")
    score_p.add_argument("--limit", type=int)
    score_p.add_argument("--no-nfkc", action="store_true")
    score_p.add_argument("--casefold", action="store_true")
    score_p.add_argument("--strip-punctuation", action="store_true")
    score_p.add_argument("--keep-whitespace", action="store_true", help="do not collapse runs of whitespace")
    score_p.add_argument("--report", help="write <REPORT>.json and <REPORT>.md")
    args = parser.parse_args(argv)

    norm = Normalization(not args.no_nfkc, args.casefold, args.strip_punctuation, not args.keep_whitespace)
    samples = read_ocr(args.gt, limit=args.limit)
    score = score_ocr(samples, load_predictions(args.predictions, PREDICTION_KEYS), norm)
    print(emit(score.to_dict(), "OCR", args.report, {"gt": args.gt, "predictions": args.predictions}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
