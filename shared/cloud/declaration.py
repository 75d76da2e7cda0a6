"""The declaration of functions and their triggers (functions/functions.yaml), typed.

Both the local runtime and Terraform read the same file, so a function cannot be wired
one way on a laptop and another way in production.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Annotated, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = REPO_ROOT / "functions"
DECLARATION_PATH = FUNCTIONS_DIR / "functions.yaml"

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpTrigger(_Strict):
    kind: Literal["http"]
    public: bool = False  # anyone may call it, through the HTTPS load balancer (edge.tf)
    operators: bool = False  # ops call it with their Google identity (IAM), from anywhere
    api: str | None = None  # "module:attribute" of the StaffApi it serves, for its OpenAPI document


class PubSubTrigger(_Strict):
    kind: Literal["pubsub"]
    topic: str
    ordering: bool = False
    ack_deadline_seconds: int = Field(default=60, ge=10, le=600)  # a push waits this long for the answer
    min_backoff_seconds: int = Field(default=10, ge=0, le=600)  # Pub/Sub's exponential redelivery
    max_backoff_seconds: int = Field(default=600, ge=0, le=600)
    max_delivery_attempts: int = Field(default=20, ge=5, le=100)  # then the dead-letter topic


class StorageTrigger(_Strict):
    kind: Literal["storage"]
    bucket: str


class TaskQueueTrigger(_Strict):
    kind: Literal["task_queue"]
    queue: str


class ScheduleTrigger(_Strict):
    kind: Literal["schedule"]
    cron: str
    time_zone: str = "Etc/UTC"


Trigger = Annotated[
    HttpTrigger | PubSubTrigger | StorageTrigger | TaskQueueTrigger | ScheduleTrigger,
    Field(discriminator="kind"),
]


class QueueConfig(_Strict):
    """Retry settings of a Cloud Tasks queue, honoured by the local dispatcher too."""

    max_attempts: int = Field(ge=1)
    min_backoff_seconds: float = Field(gt=0)
    max_backoff_seconds: float = Field(gt=0)
    max_doublings: int = Field(ge=0)
    max_dispatches_per_second: float = Field(gt=0)
    max_concurrent_dispatches: int = Field(ge=1)

    def backoff_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based), as Cloud Tasks does:
        the interval doubles `max_doublings` times, then grows linearly, capped at max_backoff."""
        if attempt <= self.max_doublings + 1:
            delay = self.min_backoff_seconds * 2 ** (attempt - 1)
        else:
            last_doubled = self.min_backoff_seconds * 2**self.max_doublings
            delay = last_doubled * (attempt - self.max_doublings)
        return float(min(delay, self.max_backoff_seconds))


class BucketConfig(_Strict):
    env: str
    local_name: str


Secret = Literal[  # Secret Manager secrets, read as environment variables of the same name
    "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN", "OPENAI_API_KEY", "QDRANT_API_KEY", "DATABASE_OWNER_PASSWORD"
]
SECRETS: tuple[str, ...] = get_args(Secret)
_ROLE = re.compile(r"^[a-z]+\.[A-Za-z.]+$")


class FunctionDeclaration(_Strict):
    entry_point: str
    description: str
    trigger: Trigger
    roles: list[str] = Field(default_factory=list)  # of its own service account, without "roles/"
    secrets: list[Secret] = Field(default_factory=list)
    memory: str = "512Mi"
    min_instances: int = 0
    max_instances: int = 10
    timeout_seconds: int = 60

    @model_validator(mode="after")
    def _roles_are_role_names(self) -> FunctionDeclaration:
        bad = [role for role in self.roles if not _ROLE.match(role)]
        if bad:
            raise ValueError(f"not IAM role names (give them without 'roles/'): {bad}")
        return self


class Declaration(_Strict):
    topics: list[str]
    queues: dict[str, QueueConfig]
    buckets: dict[str, BucketConfig]
    functions: dict[str, FunctionDeclaration]

    @model_validator(mode="after")
    def _references_resolve(self) -> Declaration:
        for name, fn in self.functions.items():
            if not _NAME.match(name):
                raise ValueError(f"function name {name!r} is not a valid Cloud Run service name")
            trigger = fn.trigger
            if isinstance(trigger, PubSubTrigger) and trigger.topic not in self.topics:
                raise ValueError(f"function {name} listens to undeclared topic {trigger.topic!r}")
            if isinstance(trigger, PubSubTrigger) and trigger.ack_deadline_seconds < fn.timeout_seconds:
                raise ValueError(f"function {name}: a push would be redelivered while it still runs")
            if isinstance(trigger, TaskQueueTrigger) and trigger.queue not in self.queues:
                raise ValueError(f"function {name} targets undeclared queue {trigger.queue!r}")
            if isinstance(trigger, StorageTrigger) and trigger.bucket not in self.buckets:
                raise ValueError(f"function {name} watches undeclared bucket {trigger.bucket!r}")
        return self

    def source_of(self, name: str) -> Path:
        return FUNCTIONS_DIR / name / "main.py"

    def function_for_queue(self, queue: str) -> str:
        for name, fn in self.functions.items():
            if isinstance(fn.trigger, TaskQueueTrigger) and fn.trigger.queue == queue:
                return name
        raise KeyError(f"no function targets queue {queue!r}")


def load_declaration(path: Path = DECLARATION_PATH) -> Declaration:
    return Declaration.model_validate(yaml.safe_load(path.read_text()))


@cache
def declaration() -> Declaration:
    """The repository's declaration, parsed once per process."""
    return load_declaration()
