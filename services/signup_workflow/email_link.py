"""The link in the verification email: a plain GET a browser opens.

It resolves the workflow's promise the same way `click` does: by calling `click` through the
Restate ingress, so the call is durable and deduplicated like any other.

Whatever a browser sends (any user id, any secret, in any script) ends in an answer that says
what happened: 200 once the click is recorded, Restate's own 4xx when the request cannot be
(e.g. 409: the link was already used with another secret), 502 only when Restate cannot be
reached or is not serving `SignupWorkflow`.
"""

from typing import Annotated
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse

from examples_runtime.settings import get_settings

email_link_app = FastAPI()


@email_link_app.get("/verify/{user_id:path}")  # a user id may hold "/" (as %2F)
async def verify(user_id: str, secret: Annotated[str, Query(min_length=1)]) -> JSONResponse:
    # The user id is one path segment of Restate's URL ("/" or "?" in it must not start
    # another), and header values are ASCII: both percent-encoded. The idempotency key only
    # has to be the same for the same secret.
    url = f"{get_settings().restate_ingress_url}/SignupWorkflow/{quote(user_id, safe='')}/click"
    headers = {"idempotency-key": quote(secret, safe="")}
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(url, json=secret, headers=headers)
    except httpx.HTTPError as error:
        return JSONResponse({"error": f"Restate ingress unreachable: {error}"}, status_code=502)
    if answer.is_success:
        return JSONResponse({"userId": user_id, "clicked": True})
    problem = f"Restate answered {answer.status_code}: {_message(answer)}"
    # A 4xx is about this request (the link was used already, a user id too long...); a 404
    # here can only mean that SignupWorkflow is not registered: Restate's fault, as a 5xx is.
    if 400 <= answer.status_code < 500 and answer.status_code != 404:
        return JSONResponse({"error": problem}, status_code=answer.status_code)
    return JSONResponse({"error": problem}, status_code=502)


def _message(answer: httpx.Response) -> str:
    try:
        return str(answer.json()["message"])
    except (ValueError, KeyError, TypeError):
        return answer.text or answer.reason_phrase
