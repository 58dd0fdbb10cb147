"""Backends built on first use (`vistool.load(..., lazy=True)`) and one backend over several
servers (`EndpointPool`), against the scripted loopback server of the OpenAI backend tests."""

from __future__ import annotations

import pickle

import pytest

from tests.test_openai_backend import ScriptedServer, completion, noise_image, prompt_of
from vistool.api import load
from vistool.errors import VistoolError
from vistool.runtime import make_backend
from vistool.runtime.deferred import BackendRecipe, DeferredBackend
from vistool.runtime.pool import EndpointPool, split_base_urls
from vistool.runtime.types import GenerationRequest


@pytest.fixture
def servers():
    """Two scripted servers, stopped afterwards."""
    pair = [ScriptedServer(), ScriptedServer()]
    yield pair
    for server in pair:
        server.stop()


def test_lazy_load_builds_nothing_until_first_use_and_pickles_as_its_recipe(servers):
    server = servers[0]
    vt = load("google/gemma-4-E2B-it", backend="openai", base_url=server.base_url, lazy=True, engine="vllm", budget=280)
    assert isinstance(vt.backend, DeferredBackend) and not vt.backend.loaded
    assert vt.backend.model_id == "google/gemma-4-E2B-it" and vt.profile.name == "gemma4"
    copy = pickle.loads(pickle.dumps(vt.backend))
    assert copy.recipe == vt.backend.recipe and not copy.loaded
    result = vt.caption(noise_image(32, 24))
    assert result.ok and vt.backend.loaded and server.count == 1
    assert pickle.loads(pickle.dumps(vt.backend)).loaded is False  # the built backend never travels
    assert vt.backend.engine == "vllm"  # other attributes are the built backend's


def test_a_lazy_unknown_backend_fails_on_first_use_with_the_usual_message():
    backend = DeferredBackend(BackendRecipe("google/gemma-4-E2B-it", backend="telepathy"))
    with pytest.raises(VistoolError, match="unknown backend 'telepathy'"):
        backend.generate([GenerationRequest("hi")])


def test_pool_spreads_requests_over_servers_in_order(servers):
    for number, server in enumerate(servers):
        server.reply = lambda body, srv, number=number: (200, completion(f"{number}:{prompt_of(body)}"), {})
    pool = make_backend("google/gemma-4-E2B-it", backend="openai", base_url=",".join(s.base_url for s in servers), engine="vllm")
    assert isinstance(pool, EndpointPool)
    answers = pool.generate([GenerationRequest(f"p{i}") for i in range(10)])
    assert [answer.text.split(":")[1] for answer in answers] == [f"p{i}" for i in range(10)]  # order kept
    assert [server.count for server in servers] == [5, 5]
    used = [answer.text.split(":")[0] for answer in answers]
    assert all(used[i] != used[i + 1] for i in range(9))  # in turn
    assert {answer.settings["base_url"] for answer in answers} == {s.base_url for s in servers}


def test_pool_failures_stay_with_their_server(servers):
    servers[0].reply = lambda body, srv: (200, completion("ok"), {})
    servers[1].reply = lambda body, srv: (400, {"error": {"message": "bad request"}}, {})
    pool = EndpointPool("google/gemma-4-E2B-it", [s.base_url for s in servers], engine="vllm", max_attempts=1)
    answers = pool.generate([GenerationRequest(f"p{i}") for i in range(6)])
    assert sum(answer.ok for answer in answers) == 3 and sum(not answer.ok for answer in answers) == 3
    assert all("400" in answer.error for answer in answers if not answer.ok)


def test_split_base_urls():
    assert split_base_urls(None) == [] and split_base_urls(" ") == []
    assert split_base_urls("http://a/v1, http://b/v1,") == ["http://a/v1", "http://b/v1"]
    assert split_base_urls(["http://a/v1"]) == ["http://a/v1"]
    with pytest.raises(VistoolError, match="at least one server"):
        EndpointPool("m", [])


def test_whether_a_lazy_backend_can_score_is_known_without_loading():
    local = DeferredBackend(BackendRecipe("google/gemma-4-E2B-it"))
    served = DeferredBackend(BackendRecipe("google/gemma-4-E2B-it", backend="openai", base_urls=("http://127.0.0.1:9/v1",)))
    assert hasattr(local, "score") and not hasattr(served, "score")
    assert not local.loaded and not served.loaded
