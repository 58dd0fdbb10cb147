"""OCR evaluator: CER / WER / exact match on strings with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import jiwer
import pytest

from vistool.evaluation.ocr import Normalization, OcrSample, main, normalize_text, read_ocr, score_ocr, score_texts


def test_known_cer_and_wer() -> None:
    score = score_texts(["hello world"], ["hallo world"])
    assert score.cer == pytest.approx(1 / 11) and score.wer == pytest.approx(1 / 2)
    assert score.exact_match == 0.0 and score.n == 1
    kitten = score_texts(["kitten sitting"], ["sitting kitten"])
    assert kitten.wer == pytest.approx(1.0)  # two substitutions over two words


def test_corpus_versus_mean_figures() -> None:
    score = score_texts(["ab", "abcdefgh"], ["ab", ""])
    assert score.cer == pytest.approx(8 / 10)  # corpus: 8 deletions over 10 reference characters
    assert score.mean_cer == pytest.approx(0.5)  # per sample: 0 and 1
    assert score.exact_match == pytest.approx(0.5) and score.reference_chars == 10
    refs, hyps = ["the cat sat", "on the mat today", "x"], ["the bat sat", "on mat today", "y z"]
    mixed = score_texts(refs, hyps)
    assert mixed.cer == pytest.approx(jiwer.cer(refs, hyps))
    assert mixed.wer == pytest.approx(jiwer.wer(refs, hyps))


def test_normalisation() -> None:
    assert normalize_text("ﬁne  Ｆｕｌｌ\twidth\n") == "fine Full width"
    assert normalize_text("ﬁne", Normalization(nfkc=False)) == "ﬁne"
    assert normalize_text("Hello, World!", Normalization(casefold=True, strip_punctuation=True)) == "hello world"
    assert normalize_text(" a  b ", Normalization(collapse_whitespace=False)) == " a  b "
    assert score_texts(["Straße"], ["STRASSE"], Normalization(casefold=True)).exact_match == 1.0
    assert score_texts(["Straße"], ["STRASSE"]).exact_match == 0.0


def test_format_errors_and_empty_references() -> None:
    score = score_texts(["abc", "", ""], [None, "", "x"])
    assert score.format_errors == 1 and score.format_error_rate == pytest.approx(1 / 3)
    assert [p["cer"] for p in score.per_sample] == [1.0, 0.0, 1.0]  # empty reference: 0 if empty prediction, else 1
    assert score.cer == pytest.approx(4 / 3)  # 3 deletions + 1 insertion over 3 reference characters
    with pytest.raises(ValueError):
        score_texts(["a"], [])


def test_reader_scorer_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = tmp_path / "ocr.jsonl"
    gt.write_text(json.dumps({"id": "p1", "image": "p1.png", "text": "TOTAL 12.50"}) + "\n\n" + json.dumps({"file_name": "/abs/p2.png", "text": "thank you"}) + "\n")
    samples = read_ocr(gt)
    assert samples == [OcrSample("p1", tmp_path / "p1.png", "TOTAL 12.50"), OcrSample("1", Path("/abs/p2.png"), "thank you")]
    assert len(read_ocr(gt, limit=1)) == 1
    score = score_ocr(samples, {"p1": "TOTAL 12.50"})
    assert score.exact_match == 0.5 and score.format_errors == 1
    assert score_ocr(samples, ["TOTAL 12.50", "thank you"]).cer == 0.0

    preds = tmp_path / "pred.jsonl"
    preds.write_text(json.dumps({"id": "p1", "text": "total 12.50"}) + "\n" + json.dumps({"id": "1", "prediction": "thank you"}) + "\n")
    assert main(["score", str(gt), str(preds), "--casefold", "--report", str(tmp_path / "r")]) == 0
    assert "| exact_match | 1.0000 |" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["metrics"]["normalization"]["casefold"] is True
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"image": "a.png"}) + "\n")
    with pytest.raises(ValueError, match="text"):
        read_ocr(bad)
