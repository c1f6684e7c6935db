"""Configuration of a service process, read from environment variables and validated at start."""

from __future__ import annotations

import functools
from typing import Annotated, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Settings(BaseSettings):
    """Every setting a service understands; each maps to the environment variable in upper case."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    host: str = Field("0.0.0.0", description="Address the service listens on.")
    port: int = Field(9080, ge=1, le=65535, description="Port the service listens on.")
    # A second port serving only /metrics, /healthz and /readyz: a NetworkPolicy can then let
    # Prometheus in without opening `port`, where Restate invokes the handlers. (Those paths
    # stay on `port` too.)
    metrics_port: int | None = Field(None, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64, description="Worker processes.")
    # The HTTP server: granian (Rust, embedded in each worker's event loop) or hypercorn (pure
    # Python, h2). Both carry Restate's h2c streams and HTTP/1.1 probes on the same port and
    # drain the same way on SIGTERM; granian on uvloop costs less CPU per operation
    # (docs/benchmarks.md measures both in every run; README says why it is the default).
    server: Literal["hypercorn", "granian"] = "granian"
    # The asyncio event loop implementation: uvloop (libuv) or the standard library's.
    event_loop: Literal["asyncio", "uvloop"] = "uvloop"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    shutdown_grace_seconds: float = Field(
        5.0, ge=0.0, le=60.0, description="How long SIGTERM waits for in-flight requests."
    )
    # Public keys (`publickeyv1_...`) of the Restate servers allowed to call this service.
    # Empty: requests are not verified (local runs only).
    restate_identity_keys: Annotated[list[str], NoDecode] = []
    # Per-stub failure probabilities, JSON: {"create_recurring_payment": 0.5}. Stubs not named
    # keep the probability of the original example.
    failure_probabilities: dict[str, Probability] = {}
    # "raise": an injected failure raises (Restate retries the step). "crash": it kills the
    # whole process, to show that Restate recovers the invocation after a restart.
    failure_mode: Literal["raise", "crash"] = "raise"
    # How long each pretend external call takes before its effect happens, as a real system's
    # latency would (0: at once). Long enough, a process can be killed inside a step.
    stub_latency_seconds: float = Field(0.0, ge=0.0, le=60.0)
    # Where the Restate ingress is, for requests a service prints or makes on a user's behalf.
    restate_ingress_url: str = "http://localhost:8080"
    # Where this service is reachable from a browser, for links it hands out (signup emails).
    public_url: str | None = None
    building_blocks_sleep_seconds: float = Field(5.0, ge=0.0)
    building_blocks_cancel_delay_seconds: float = Field(24 * 60 * 60, ge=0.0)

    @field_validator("restate_identity_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("restate_identity_keys")
    @classmethod
    def _check_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if not key.startswith("publickeyv1_"):
                raise ValueError(f"{key!r} is not a Restate public key (publickeyv1_...)")
        return keys

    @field_validator("restate_ingress_url", "public_url")
    @classmethod
    def _no_trailing_slash(cls, url: str | None) -> str | None:
        return url.rstrip("/") if url else url

    @field_validator("metrics_port")
    @classmethod
    def _not_the_service_port(cls, port: int | None, info: ValidationInfo) -> int | None:
        if port is not None and port == info.data.get("port"):
            raise ValueError("must differ from PORT")
        return port

    @property
    def link_base_url(self) -> str:
        return self.public_url or f"http://localhost:{self.port}"


class SettingsError(SystemExit):
    """Raised at start when the environment holds an invalid setting; the message names it."""


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read once. Exits with a clear message when a value is invalid."""
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"{'_'.join(str(p) for p in e['loc'][:1]).upper()}: {e['msg']}" for e in error.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
