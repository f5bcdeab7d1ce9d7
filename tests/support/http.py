"""Small HTTP helpers for tests against real servers."""

from __future__ import annotations

import httpx

from tests.support import images


def classify(
    client: httpx.Client, model: str, data: bytes | None = None, media: str = "image/jpeg", **params: object
) -> httpx.Response:
    return client.post(
        f"/v1/models/{model}/classify",
        content=images.jpeg() if data is None else data,
        headers={"content-type": media},
        params={k: v for k, v in params.items() if v is not None},
    )


def error_of(response: httpx.Response) -> dict[str, object]:
    """The gateway error body's fields (either spelling), asserting the stable shape."""
    body = response.json()
    error = body["error"]
    if isinstance(error, dict):
        assert {"code", "message", "status"} <= set(error)
        assert error["status"] == response.status_code
        return error
    assert isinstance(error, str) and {"code", "status"} <= set(body)
    return {"message": error, **{k: v for k, v in body.items() if k != "error"}}
