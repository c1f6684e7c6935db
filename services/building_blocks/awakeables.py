"""The outside view of block 4 (durable promises): which awakeables this process is waiting
on, served on GET /awakeables of the service's port beside Restate's endpoint.

    curl localhost:9082/awakeables          # {"<invocation id>": "<awakeable id>"}
"""

from fastapi import FastAPI

from building_blocks.stubs import PENDING_AWAKEABLES

awakeables_app = FastAPI()


@awakeables_app.get("/awakeables")
async def pending_awakeables() -> dict[str, str]:
    return PENDING_AWAKEABLES
