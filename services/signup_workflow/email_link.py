"""The link in the verification email: a plain GET a browser opens.

It resolves the workflow's promise the same way `click` does: by calling `click` through the
Restate ingress, so the call is durable and deduplicated like any other.
"""

from typing import Annotated

import httpx
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse

from examples_runtime.settings import get_settings

email_link_app = FastAPI()


@email_link_app.get("/verify/{user_id}")
async def verify(user_id: str, secret: Annotated[str, Query(min_length=1)]) -> JSONResponse:
    url = f"{get_settings().restate_ingress_url}/SignupWorkflow/{user_id}/click"
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(url, json=secret, headers={"idempotency-key": secret})
    except httpx.HTTPError as error:
        return JSONResponse({"error": f"Restate ingress unreachable: {error}"}, status_code=502)
    if answer.is_error:
        return JSONResponse(
            {"error": f"Restate answered {answer.status_code}: {answer.text}"}, status_code=502
        )
    return JSONResponse({"userId": user_id, "clicked": True})
