"""Example 3, workflows: a signup that waits, durably, for the user to click a link.

A workflow is a virtual object whose `run` handler executes exactly once per key (here, per
user id). Other handlers of the workflow (`click`) can run concurrently with it and talk to it
through durable promises: `run` suspends on the promise `email-link` (no process waits, it
can take days), and `click` resolves it.

    curl localhost:8080/SignupWorkflow/userid1/run/send -H 'content-type: application/json' \\
      -d '{ "name": "Bob", "email": "bob@builder.com" }'
    curl localhost:8080/SignupWorkflow/userid1/click -H 'content-type: application/json' \\
      -d '"<SECRET from the email in the logs>"'
    curl localhost:8080/restate/workflow/SignupWorkflow/userid1/attach
"""

import restate
from pydantic import BaseModel

from examples_runtime.app import create_app
from signup_workflow.email_link import email_link_app
from signup_workflow.stubs import create_user_entry, send_email_with_link


class User(BaseModel):
    name: str
    email: str


signup_workflow = restate.Workflow("SignupWorkflow")


@signup_workflow.main()
async def run(ctx: restate.WorkflowContext, user: User) -> bool:
    user_id = ctx.key()

    await ctx.run_typed("create user", create_user_entry, name=user.name, email=user.email)

    # A secret from the journaled UUID: the same value if this handler is ever replayed.
    secret = str(ctx.uuid())
    await ctx.run_typed(
        "send email", send_email_with_link, user_id=user_id, email=user.email, secret=secret
    )

    # Wait for the durable promise; `click` resolves it. Restate suspends the invocation.
    click_secret = await ctx.promise("email-link", type_hint=str).value()
    return click_secret == secret


@signup_workflow.handler()
async def click(ctx: restate.WorkflowSharedContext, secret: str) -> None:
    await ctx.promise("email-link", type_hint=str).resolve(secret)


# Besides Restate's endpoint, this service serves the link from the email (GET /verify/...).
app = create_app([signup_workflow], email_link_app)
