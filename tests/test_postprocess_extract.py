"""Answer extraction: every shape of JSON answer models really emit, with exact item spans."""

from __future__ import annotations

import json

import pytest

from vistool.postprocess.diagnostics import TRUNCATED
from vistool.postprocess.extract import extract_json_items

KEYS = ("box_2d",)
GEMMA_THOUGHT = (("<|channel>", "<channel|>"),)
A = {"box_2d": [171, 75, 245, 308], "label": "a"}
B = {"box_2d": [10, 20, 30, 40], "label": "b"}


def extract(text: str, markers=GEMMA_THOUGHT):
    return extract_json_items(text, KEYS, markers)


def assert_spans_match(text: str, found) -> None:
    """Every span must cover exactly the text that decodes to its item."""
    assert len(found.spans) == len(found.items)
    for item, span in zip(found.items, found.spans):
        assert span is not None
        start, end = span
        piece = text[start:end]
        assert piece[0] in "[{" and piece[-1] in "]}"
        try:
            assert json.loads(piece) == item
        except json.JSONDecodeError:  # a repaired item: its text still holds its numbers
            for number in item.get("box_2d", []):
                assert str(number) in piece


def test_fenced_list_with_prose_around() -> None:
    text = f"Sure! Here are the boxes:\n```json\n{json.dumps([A, B], indent=2)}\n```\nLet me know [if] you need more."
    found = extract(text)
    assert found.items == [A, B]
    assert_spans_match(text, found)
    assert found.diagnostics.dropped == [] and not found.diagnostics.truncated


def test_several_fences_are_all_read() -> None:
    text = f"First:\n```json\n{json.dumps([A])}\n```\nand then\n```json\n{json.dumps([B])}\n```"
    found = extract(text)
    assert found.items == [A, B]
    assert_spans_match(text, found)


def test_unfenced_prose_before_and_after() -> None:
    text = f"The objects are {json.dumps([A, B])} as requested."
    found = extract(text)
    assert found.items == [A, B]
    assert_spans_match(text, found)


def test_gemma_thinking_channel_is_skipped_and_kept_as_thought() -> None:
    decoy = json.dumps([{"box_2d": [1, 2, 3, 4], "label": "draft"}])
    text = f"<|channel>thought\nMaybe {decoy}?<channel|>```json\n{json.dumps([A])}\n```"
    found = extract(text)
    assert found.items == [A]
    assert found.diagnostics.thought is not None and "draft" in found.diagnostics.thought
    assert_spans_match(text, found)  # spans index the ORIGINAL text, thought included


def test_thinking_cut_off_by_the_token_limit_yields_nothing() -> None:
    found = extract('<|channel>thought\nI will answer [{"box_2d": [1, 2, 3, 4], "label": "x"}')
    assert found.items == []
    assert found.diagnostics.truncated


def test_trailing_commas_and_single_quotes() -> None:
    text = "```json\n[{'box_2d': [171, 75, 245, 308,], 'label': 'a',}, {\"box_2d\": [10, 20, 30, 40], \"label\": \"b\"},]\n```"
    found = extract(text)
    assert found.items == [A, B]
    assert_spans_match(text, found)


def test_bare_object_instead_of_a_list() -> None:
    text = f"```json\n{json.dumps(A)}\n```"
    found = extract(text)
    assert found.items == [A]
    assert found.spans == [(8, 8 + len(json.dumps(A)))]


def test_objects_one_per_line_without_a_list() -> None:
    text = f"{json.dumps(A)}\n{json.dumps(B)}\n"
    found = extract(text)
    assert found.items == [A, B]
    assert_spans_match(text, found)


@pytest.mark.parametrize("wrapper", ["boxes", "objects", "detections"])
def test_wrapper_object_is_opened(wrapper: str) -> None:
    text = json.dumps({wrapper: [A, B], "count": 2})
    found = extract(text)
    assert found.items == [A, B]
    assert_spans_match(text, found)
    assert any("unwrapped" in note for note in found.diagnostics.repairs)


def test_truncated_list_keeps_every_complete_item_and_reports_the_cut() -> None:
    full = json.dumps([A, B, A])
    cut = full[: full.rindex("308") + 2]  # inside the third item's box
    found = extract("```json\n" + cut)
    assert found.items == [A, B]
    assert found.diagnostics.truncated
    assert found.diagnostics.reasons() == [TRUNCATED]
    assert found.diagnostics.dropped[0].span is not None


def test_truncated_item_with_complete_box_is_not_invented() -> None:
    # json_repair would "complete" this object; vistool must not keep an item the text never closed.
    text = '[{"box_2d": [171, 75, 245, 308], "label": "a"}, {"box_2d": [10, 20, 30, 40], "label": "b'
    found = extract(text)
    assert found.items == [A]
    assert found.diagnostics.reasons() == [TRUNCATED]


def test_labels_holding_brackets_and_braces_keep_exact_spans() -> None:
    items = [{"box_2d": [1, 2, 3, 4], "label": "a {weird} [label]"}, {"box_2d": [5, 6, 7, 8], "label": "}{"}]
    text = "```json\n" + json.dumps(items) + "\n```"
    found = extract(text)
    assert found.items == items
    assert_spans_match(text, found)


def test_bare_coordinate_lists() -> None:
    text = "[[171, 75, 245, 308], [10, 20, 30, 40]]"
    found = extract(text)
    assert found.items == [[171, 75, 245, 308], [10, 20, 30, 40]]
    first, second = "[171, 75, 245, 308]", "[10, 20, 30, 40]"
    assert found.spans == [(1, 1 + len(first)), (text.index(second), text.index(second) + len(second))]


def test_empty_list_and_prose_brackets_report_nothing() -> None:
    for text in ["[]", "```json\n[]\n```", "I found nothing [see above] {really}.", "", "no json at all"]:
        found = extract(text)
        assert found.items == [] and found.diagnostics.dropped == [], text


def test_object_left_open_mid_list_is_salvaged() -> None:
    text = '[{"box_2d": [171, 75, 245, 308], "label": "a"], {"box_2d": [10, 20, 30, 40], "label": "b"}]'
    found = extract(text)
    assert A in found.items


def test_item_without_the_key_in_strict_json_is_still_returned_for_the_reader_to_judge() -> None:
    text = json.dumps([A, {"label": "no box"}])
    found = extract(text)
    assert found.items == [A, {"label": "no box"}]
    assert_spans_match(text, found)


def test_fence_marks_inside_labels_or_after_prose_do_not_cut_the_answer() -> None:
    items = [{"box_2d": [1, 2, 3, 4], "label": "```"}, {"box_2d": [5, 6, 7, 8], "label": "a ```json b"}]
    text = "```json\n" + json.dumps(items) + "\n```"
    found = extract(text)
    assert found.items == items
    assert_spans_match(text, found)
    inline = "Sure: ```json\n" + json.dumps(items) + "\n```"
    assert extract(inline).items == items
    after_thought = "<|channel>thought\nok<channel|>```json\n" + json.dumps(items) + "```"
    assert extract(after_thought).items == items
