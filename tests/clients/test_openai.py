"""The OpenAI-style routes with the real ``openai`` SDK (embeddings, models) and Infinity's rerank shape:
the vectors equal the feature-extraction route's, dimensions shorten and renormalise them, errors reach
the SDK's user with the server's message."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from tests.support import running_endpoint
from tests.tiny_models import minilm_path

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = ["The ferry leaves for the island at seven.", "A short one.", "Bakers light the ovens early."]


@pytest.fixture(scope="module")
def endpoint(local_ray, tiny_model):
    serve = {"num_cpus": 0.1, "max_batch_size": 8, "batch_wait_timeout_s": 0.01}
    specs = [
        {
            "task": "feature-extraction",
            "model": MINILM,  # the Hub id, as users write it: resolved to the copy the package ships
            "device": "cpu",
            "serve": {**serve, "route": "/embeddings"},
        },
        {
            "task": "text-ranking",
            "model": tiny_model("text-ranking"),
            "device": "cpu",
            "serve": {**serve, "route": "/rank"},
        },
    ]
    with running_endpoint(specs, "pipefleet-openai") as url:
        yield url


@pytest.fixture
def openai(endpoint):
    from openai import OpenAI

    return OpenAI(base_url=f"{endpoint}/v1", api_key="unused", max_retries=0, timeout=120)


def route_vectors(endpoint: str, texts: list[str]) -> np.ndarray:
    return np.asarray(httpx.post(f"{endpoint}/embeddings", json={"inputs": texts}, timeout=120).json())


@pytest.mark.parametrize("encoding_format", ["float", "base64", None])  # None: the SDK's own default, base64
@pytest.mark.parametrize("model", ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "embeddings"])
def test_embeddings_equal_the_routes_vectors(openai, endpoint, encoding_format, model):
    options = {"encoding_format": encoding_format} if encoding_format else {}
    answer = openai.embeddings.create(model=model, input=TEXTS, **options)
    # Asked for explicitly, base64 comes back as the string (the SDK decodes only what it asked for itself).
    decode = (lambda e: np.frombuffer(base64.b64decode(e), dtype="<f4")) if encoding_format == "base64" else np.asarray
    vectors = np.asarray([decode(item.embedding) for item in answer.data], dtype=np.float32)
    np.testing.assert_allclose(vectors, route_vectors(endpoint, TEXTS), atol=1e-6)
    assert [item.index for item in answer.data] == [0, 1, 2]
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > len(TEXTS)


def test_dimensions_shorten_and_renormalise(openai, endpoint):
    answer = openai.embeddings.create(model="embeddings", input=TEXTS[0], dimensions=64)
    short = np.asarray(answer.data[0].embedding)
    full = route_vectors(endpoint, TEXTS[:1])[0]
    assert short.shape == (64,)
    np.testing.assert_allclose(short, full[:64] / np.linalg.norm(full[:64]), atol=1e-5)


def test_token_ids_of_the_models_tokenizer_are_embedded_as_their_text(openai, endpoint):
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(minilm_path())(TEXTS[1])["input_ids"]
    answer = openai.embeddings.create(model="embeddings", input=[ids])
    np.testing.assert_allclose(answer.data[0].embedding, route_vectors(endpoint, TEXTS[1:2])[0], atol=1e-5)


def test_models_lists_the_routes_behind_the_v1_routes(openai):
    listed = {model.id for model in openai.models.list()}
    assert "sentence-transformers/all-MiniLM-L6-v2" in listed and len(listed) == 2


def test_errors_reach_the_sdk_user_with_the_servers_message(openai):
    from openai import BadRequestError, UnprocessableEntityError

    with pytest.raises(UnprocessableEntityError, match="dimensions 1000 is more than the model's 384"):
        openai.embeddings.create(model="embeddings", input="x", dimensions=1000)
    with pytest.raises(BadRequestError, match=r"unknown key\(s\) \['truncation'\]"):
        openai.embeddings.create(model="embeddings", input="x", extra_body={"truncation": "end"})


def test_with_one_embedding_route_any_model_name_reaches_it(openai, endpoint):
    answer = openai.embeddings.create(model="text-embedding-3-small", input=TEXTS[0], encoding_format="float")
    np.testing.assert_allclose(answer.data[0].embedding, route_vectors(endpoint, TEXTS[:1])[0], atol=1e-6)


def test_rerank_in_infinitys_shape_equals_the_route(endpoint):
    query, documents = "what do bakers do", ["They bake bread early.", "Stocks fell.", "Bakers light ovens."]
    body = {"model": "rank", "query": query, "documents": documents, "top_n": 2, "return_documents": True}
    answer = httpx.post(f"{endpoint}/v1/rerank", json=body, timeout=120).json()
    ranked = httpx.post(f"{endpoint}/rank", json={"inputs": {"query": query, "texts": documents}}, timeout=120).json()
    assert [r["index"] for r in answer["results"]] == [r["index"] for r in ranked[:2]]
    assert [r["relevance_score"] for r in answer["results"]] == pytest.approx(
        [r["score"] for r in ranked[:2]], abs=1e-6
    )
    assert all(r["document"]["text"] == documents[r["index"]] for r in answer["results"])
    wrong = httpx.post(f"{endpoint}/v1/rerank", json={"query": query, "documents": []}, timeout=60)
    assert wrong.status_code == 400 and "documents" in wrong.json()["error"]["message"]
