"""Classification by label log-probability: exact scoring on the tiny model, a distribution
that sums to 1 and follows the label set, clear refusals, COCO-style image labels."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from vistool.api import Vistool
from vistool.batch.export_labels import write_coco_image_labels
from vistool.errors import RequestError, VistoolError
from vistool.runtime.replay import ReplayBackend
from vistool.runtime.scoring import choice_token_ids
from vistool.runtime.types import GenerationRequest, GenerationResponse

IMAGE = Image.new("RGB", (320, 240), (200, 40, 40))


def _reference_scores(backend, request: GenerationRequest) -> list[float]:
    """Each choice scored in a forward pass of its own over prompt + choice (no cache)."""
    import torch

    inputs = backend._prepare([request]).inputs
    ids = choice_token_ids(backend.tokenizer, request.choices, backend.profile.answer_end)
    prompt_length = inputs["input_ids"].shape[1]
    scores = []
    with torch.inference_mode():
        for tokens in ids:
            full = dict(inputs)
            full["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([tokens])], dim=1)
            full["attention_mask"] = torch.ones_like(full["input_ids"])
            full["mm_token_type_ids"] = torch.cat(
                [inputs["mm_token_type_ids"], torch.zeros((1, len(tokens)), dtype=inputs["mm_token_type_ids"].dtype)], dim=1
            )
            logprobs = torch.log_softmax(backend.model(**full).logits[0].float(), dim=-1)
            scores.append(sum(float(logprobs[prompt_length - 1 + j, token]) for j, token in enumerate(tokens)))
    return scores


def test_shared_prefix_scoring_equals_scoring_each_choice_alone(tiny_backend):
    request = GenerationRequest(prompt="Which: cat, dog, a bird?", images=[IMAGE], budget=70,
                                choices=("cat", "dog", "a bird", "cats"))
    response = tiny_backend.score([request])[0]
    assert response.ok, response.error
    assert response.choice_logprobs == pytest.approx(_reference_scores(tiny_backend, request), abs=1e-4)
    assert response.timings["forward_passes"] == 2
    assert response.text == request.choices[max(range(4), key=response.choice_logprobs.__getitem__)]


def test_each_choice_ends_with_the_end_of_answer_token(tiny_backend):
    ids = choice_token_ids(tiny_backend.tokenizer, ["cat", "cats"], "<turn|>")
    end = tiny_backend.tokenizer.convert_tokens_to_ids("<turn|>")
    assert all(tokens[-1] == end for tokens in ids)
    assert ids[0][:-1] != ids[1][:-1]  # "cat" is not scored as a prefix of "cats"


def test_tiny_model_distribution_sums_to_one_and_changes_with_the_label_set(tiny_backend):
    vt = Vistool(tiny_backend)
    three = vt.classify(IMAGE, ["cat", "dog", "bird"])
    two = vt.classify(IMAGE, "cat, dog")
    for result in (three, two):
        assert result.ok, result.error
        assert math.isclose(sum(result.extras["probabilities"]), 1.0, rel_tol=1e-9)
        assert result.extras["label"] == result.text in result.extras["labels"]
        assert result.extras["confidence"] == max(result.extras["probabilities"])
        assert 0 < result.extras["coverage"] <= 1
    assert len(three.extras["probabilities"]) == 3 and len(two.extras["probabilities"]) == 2
    assert three.extras["probabilities"][:2] != two.extras["probabilities"]
    assert "cat, dog, bird" in three.provenance["prompt"]
    assert three.provenance["choices"] == ["cat", "dog", "bird"]


def test_replayed_scores_give_the_softmax_over_the_labels():
    def answer(request):
        return GenerationResponse(text="dog", choice_logprobs=[math.log(0.1), math.log(0.3), math.log(0.1)])

    result = Vistool(ReplayBackend(answer)).classify(IMAGE, ["cat", "dog", "bird"])
    assert result.extras["probabilities"] == pytest.approx([0.2, 0.6, 0.2])
    assert result.extras["label"] == "dog" and result.extras["confidence"] == pytest.approx(0.6)
    assert result.extras["coverage"] == pytest.approx(0.5)


def test_bad_label_lists_and_backends_that_cannot_score_are_refused():
    vt = Vistool(ReplayBackend(["x"]))
    with pytest.raises(VistoolError, match="empty label list"):
        vt.classify(IMAGE, [])
    with pytest.raises(VistoolError, match="given twice"):
        vt.classify(IMAGE, ["cat", "Cat"])

    class GenerateOnly:
        model_id, profile_name = "served", "gemma4"

        def generate(self, requests):
            raise AssertionError("a classification must not be generated")

    with pytest.raises(RequestError, match="cannot score fixed answers"):
        Vistool(GenerateOnly()).classify(IMAGE, ["cat", "dog"])


def test_missing_scores_are_an_error_of_that_item():
    result = Vistool(ReplayBackend([GenerationResponse(text="cat")])).classify(IMAGE, ["cat", "dog"])
    assert result.error == "the backend returned no score for each choice"


def test_coco_image_labels_load_with_pycocotools(tmp_path):
    from pycocotools.coco import COCO

    vt = Vistool(ReplayBackend([GenerationResponse(text="", choice_logprobs=[-0.5, -2.0]),
                                GenerationResponse(text="", choice_logprobs=[-3.0, -1.0])]))
    first, second = vt.classify([IMAGE, IMAGE.resize((100, 50))], ["cat", "dog"])
    path = tmp_path / "labels.json"
    assert write_coco_image_labels(path, [("b.png", second), ("a.png", first)]) == 2
    coco = COCO(str(path))
    assert [cat["name"] for cat in coco.loadCats(coco.getCatIds())] == ["cat", "dog"]
    by_file = {image["file_name"]: image for image in coco.loadImgs(coco.getImgIds())}
    assert by_file["b.png"]["width"] == 100 and by_file["b.png"]["height"] == 50
    (label_a,) = coco.loadAnns(coco.getAnnIds(imgIds=[by_file["a.png"]["id"]]))
    (label_b,) = coco.loadAnns(coco.getAnnIds(imgIds=[by_file["b.png"]["id"]]))
    assert coco.loadCats(label_a["category_id"])[0]["name"] == "cat"
    assert coco.loadCats(label_b["category_id"])[0]["name"] == "dog"
    assert label_b["score"] == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert sum(label_a["probabilities"].values()) == pytest.approx(1.0)
    assert json.loads(path.read_text())["annotations"][0]["image_id"] == 1


def test_cli_classify_on_the_tiny_model(tiny_model_dir, tmp_path, capsys):
    from vistool.cli import main

    image = tmp_path / "red.png"
    IMAGE.save(image)
    code = main(["classify", str(image), "--labels", "cat,dog,bird", "--model", str(tiny_model_dir), "--device", "cpu"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["extras"]["labels"] == ["cat", "dog", "bird"]
    assert sum(printed["extras"]["probabilities"]) == pytest.approx(1.0)
    assert main(["classify", str(image), "--labels", " , ", "--model", str(tiny_model_dir)]) == 2


def test_annotate_classify_caches_the_scores_and_exports_image_labels(tmp_path):
    from pycocotools.coco import COCO

    from vistool.batch.annotate import AnnotateConfig, annotate

    photos = tmp_path / "photos"
    photos.mkdir()
    IMAGE.save(photos / "a.png")
    IMAGE.resize((64, 48)).save(photos / "b.png")
    backend = ReplayBackend(lambda request: GenerationResponse(text="", choice_logprobs=[-1.0, -0.1]))
    config = AnnotateConfig(src=str(photos), out=tmp_path / "out", task="classify", classes="cat,dog",
                            formats=["coco", "labelstudio"], progress=False, workers=0)
    first = annotate(config, vt=Vistool(backend))
    assert first.exit_code == 0 and first.report.count("done") == 2 and backend.calls == 2
    again = annotate(config, vt=Vistool(backend))
    assert again.report.count("cached") == 2 and backend.calls == 2  # the scores came from the cache
    coco = COCO(str(tmp_path / "out" / "coco.json"))
    assert [coco.loadCats(a["category_id"])[0]["name"] for a in coco.loadAnns(coco.getAnnIds())] == ["dog", "dog"]
    tasks = json.loads((tmp_path / "out" / "labelstudio" / "tasks.json").read_text())
    assert tasks[0]["predictions"][0]["result"][0]["value"] == {"choices": ["dog"]}
    class GenerateOnly:
        model_id, profile_name = "served", "gemma4"

        def generate(self, requests):
            raise AssertionError("never called")

    with pytest.raises(VistoolError, match="cannot do; use the local transformers backend"):
        annotate(AnnotateConfig(src=str(photos), out=tmp_path / "o3", task="classify", classes="cat,dog", progress=False),
                 vt=Vistool(GenerateOnly()))
    with pytest.raises(VistoolError, match="needs --classes"):
        annotate(AnnotateConfig(src=str(photos), out=tmp_path / "o2", task="classify", progress=False), vt=Vistool(backend))
