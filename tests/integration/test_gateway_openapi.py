"""The OpenAPI document is complete: every endpoint, the request bodies, examples and error shapes."""

from __future__ import annotations

import httpx


def test_openapi_documents_the_api(gateway_url: str) -> None:
    spec = httpx.get(f"{gateway_url}/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/v1/models/{model}/classify",
        "/v1/models",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{model}",
        "/v2/models/{model}/ready",
        "/v2/models/{model}/infer",
        "/admin/routing/reload",
    ):
        assert path in paths, path
    classify = paths["/v1/models/{model}/classify"]["post"]
    assert {"image/jpeg", "image/png", "image/webp", "multipart/form-data"} <= set(
        classify["requestBody"]["content"]
    )
    assert {"200", "400", "404", "413", "415", "429", "503", "504"} <= set(classify["responses"])
    schemas = spec["components"]["schemas"]
    assert schemas["ClassifyResponse"]["examples"][0]["model"] == "resnet50"
    assert schemas["ErrorResponse"]["examples"][0]["error"]["code"] == "model_not_found"
    assert {"precision", "engine"} <= set(schemas["VariantInfo"]["properties"])
    assert httpx.get(f"{gateway_url}/docs").status_code == 200
