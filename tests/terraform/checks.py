"""Static checks of terraform/ against functions/functions.yaml, without the terraform binary.

Terraform reads the declaration itself (for_each over yamldecode(...)), so these checks
evaluate the few expression shapes our Terraform uses (`local.<filter>`, `each.value.<path>`,
`try(each.value.<path>, <default>)`, string templates) for each declared function, topic and
queue, and compare the outcome with what the local runtime does with the same declaration.
An expression of another shape is reported as unreadable rather than passed.

`problems(terraform_dir, declaration_path)` returns every disagreement found, as sentences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import yaml

from shared.cloud import pubsub
from shared.cloud.declaration import (
    Declaration,
    PubSubTrigger,
    ScheduleTrigger,
    StorageTrigger,
    TaskQueueTrigger,
    load_declaration,
)

_MISSING = object()


class Unreadable(ValueError):
    """An expression outside the shapes these checks evaluate."""


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _expression(value: Any) -> str | None:
    """The expression of a value that is one `${...}` interpolation, else None."""
    if not (isinstance(value, str) and value.startswith("${") and value.endswith("}")):
        return None
    depth = 0
    for index, char in enumerate(value[1:], start=1):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:  # where the first interpolation closes: the end, or this is a template
            return value[2:-1].strip() if index == len(value) - 1 else None
    return None


def _normalise(block: Any) -> Any:
    """hcl2's output with quoted keys and literals unquoted, and its bookkeeping keys dropped."""
    if isinstance(block, dict):
        return {_unquote(k): _normalise(v) for k, v in block.items() if not k.startswith("__")}
    if isinstance(block, list):
        return [_normalise(v) for v in block]
    return _unquote(block)


@dataclass
class Terraform:
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data_sources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, directory: Path) -> Terraform:
        parsed = cls()
        for path in sorted(directory.glob("*.tf")):
            document = _normalise(hcl2.loads(path.read_text()))
            for group in document.get("resource", []):
                for kind, named in group.items():
                    for name, body in named.items():
                        if (kind, name) in parsed.resources:
                            raise Unreadable(f"resource {kind}.{name} is defined twice")
                        parsed.resources[(kind, name)] = body
            for group in document.get("data", []):
                for kind, named in group.items():
                    for name, body in named.items():
                        parsed.data_sources[(kind, name)] = body
            for group in document.get("locals", []):
                parsed.locals.update(group)
            for group in document.get("variable", []):
                parsed.variables.update(group)
        return parsed

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: body for (k, name), body in self.resources.items() if k == kind}


def _lookup(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


def _literal(text: str) -> Any:
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d*", text):
        return float(text)
    if re.fullmatch(r'"[^"$]*"', text):
        return text[1:-1]
    raise Unreadable(f"not a literal: {text}")


def evaluate(value: Any, each: Any, prefix: str = "each.value") -> Any:
    """A value of a resource (or a filter's condition) for one for_each element."""
    if not isinstance(value, str):
        return value
    expression = _expression(value)
    if expression is None:
        if "${" not in value:
            return value
        return re.sub(r"\$\{([^}]*)\}", lambda m: str(evaluate("${" + m.group(1) + "}", each, prefix)), value)
    escaped = re.escape(prefix)
    if match := re.fullmatch(escaped + r"\.([\w.]+)", expression):
        found = _lookup(each, match.group(1))
        if found is _MISSING:
            raise Unreadable(f"{expression} is missing and has no default")
        return found
    if match := re.fullmatch(r"try\(" + escaped + r"\.([\w.]+),\s*(.+)\)", expression):
        found = _lookup(each, match.group(1))
        return _literal(match.group(2)) if found is _MISSING else found
    if match := re.fullmatch(r"(.+?)\s*(==|!=)\s*(.+)", expression):
        left, right = (evaluate("${" + side + "}", each, prefix) for side in (match.group(1), match.group(3)))
        return (left == right) if match.group(2) == "==" else (left != right)
    try:
        return _literal(expression)
    except Unreadable:
        raise Unreadable(f"cannot evaluate {expression}") from None


class Model:
    """terraform/ evaluated over the raw declaration, as Terraform's yamldecode sees it."""

    def __init__(self, terraform_dir: Path, declaration_path: Path) -> None:
        self.tf = Terraform.parse(terraform_dir)
        self.raw: dict[str, Any] = yaml.safe_load(declaration_path.read_text())
        self.declaration: Declaration = load_declaration(declaration_path)

    def collection(self, expression: str) -> dict[str, Any]:
        """What a for_each over `expression` iterates: keys and raw declaration values."""
        expression = expression.strip()
        if match := re.fullmatch(r"local\.(\w+)", expression):
            name = match.group(1)
            if name not in self.tf.locals:
                raise Unreadable(f"local.{name} is not defined")
            inner = _expression(self.tf.locals[name])
            if inner is None:
                raise Unreadable(f"local.{name} is not an expression")
            return self.collection(inner)
        if match := re.fullmatch(r"local\.declaration\.(functions|queues|buckets)", expression):
            self._declaration_is_read()
            return dict(self.raw[match.group(1)])
        if match := re.fullmatch(r"toset\(local\.declaration\.topics\)", expression):
            self._declaration_is_read()
            return {topic: topic for topic in self.raw["topics"]}
        if match := re.fullmatch(r"\{\s*for (\w+), (\w+) in (local\.\w+) : \1 => \2 if (.+)\}", expression):
            _, element, source, condition = match.groups()
            items = self.collection(source)
            return {k: v for k, v in items.items() if evaluate("${" + condition + "}", v, prefix=element)}
        raise Unreadable(f"cannot enumerate {expression}")

    def _declaration_is_read(self) -> None:
        declared = _expression(self.tf.locals.get("declaration"))
        if declared is None or "functions/functions.yaml" not in declared or not declared.startswith("yamldecode("):
            raise Unreadable("local.declaration does not yamldecode functions/functions.yaml")

    def instances(self, kind: str, name: str) -> dict[str, Any]:
        body = self.tf.resources.get((kind, name))
        if body is None:
            return {}
        for_each = _expression(body.get("for_each"))
        if for_each is None:
            raise Unreadable(f"{kind}.{name} has no for_each over the declaration")
        return self.collection(for_each)

    def members(self, dynamic_for_each: str, key: str) -> bool:
        """Whether `contains(keys(local.X), each.key) ? [...] : []` holds for function `key`."""
        match = re.fullmatch(r"contains\(keys\((local\.\w+)\), each\.key\) \? \[.+\] : \[\]", dynamic_for_each.strip())
        if not match:
            raise Unreadable(f"cannot evaluate {dynamic_for_each}")
        return key in self.collection(match.group(1))


def _one(blocks: Any) -> dict[str, Any]:
    if isinstance(blocks, list) and len(blocks) == 1 and isinstance(blocks[0], dict):
        return blocks[0]
    return {}


def _dynamic(body: dict[str, Any], name: str) -> dict[str, Any] | None:
    for group in body.get("dynamic", []):
        if name in group:
            found: dict[str, Any] = group[name]
            return found
    return None


def _seconds(text: Any) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(text))
    if not match:
        raise Unreadable(f"not a duration in seconds: {text}")
    return float(match.group(1))


def problems(terraform_dir: Path, declaration_path: Path) -> list[str]:
    found: list[str] = []
    try:
        model = Model(terraform_dir, declaration_path)
        found += _functions(model)
        found += _topics(model)
        found += _subscriptions(model)
        found += _storage(model)
        found += _queues(model)
        found += _schedules(model)
        found += _roles(model)
        found += _secrets(model)
    except Unreadable as error:
        found.append(f"unreadable: {error}")
    return found


def _functions(model: Model) -> list[str]:
    found = []
    deployed = model.tf.of_type("google_cloudfunctions2_function")
    if len(deployed) != 1:
        return [f"expected one google_cloudfunctions2_function over the declaration, found {sorted(deployed)}"]
    [(resource, body)] = deployed.items()
    instances = model.instances("google_cloudfunctions2_function", resource)
    declared = model.declaration.functions
    for name in sorted(set(declared) - set(instances)):
        found.append(f"function {name} is declared but not deployed")
    for name in sorted(set(instances) - set(declared)):
        found.append(f"function {name} is deployed but not declared")
    build, service = _one(body.get("build_config")), _one(body.get("service_config"))
    if build.get("runtime") != "python312":
        found.append(f"functions are built for {build.get('runtime')}, not python312")
    if _expression(body.get("name")) != "each.key":
        found.append("functions are not deployed under their declared names")
    for name, fn in declared.items():
        raw = model.raw["functions"][name]
        expected = {
            "entry point": (build.get("entry_point"), fn.entry_point),
            "memory": (service.get("available_memory"), fn.memory),
            "min instances": (service.get("min_instance_count"), fn.min_instances),
            "max instances": (service.get("max_instance_count"), fn.max_instances),
            "timeout": (service.get("timeout_seconds"), fn.timeout_seconds),
        }
        for what, (value, wanted) in expected.items():
            actual = evaluate(value, raw)
            if actual != wanted:
                found.append(f"function {name}: {what} is {actual!r} in Terraform, {wanted!r} in the declaration")
        if _expression(service.get("service_account_email")) != "google_service_account.functions[each.key].email":
            found.append("functions do not each run as their own service account")
    return found


def _topics(model: Model) -> list[str]:
    found = []
    topics = model.instances("google_pubsub_topic", "topics")
    declared = set(model.declaration.topics)
    for topic in sorted(declared - set(topics)):
        found.append(f"topic {topic} is declared but Terraform creates no such topic")
    published = {v for k, v in vars(pubsub).items() if k.isupper() and isinstance(v, str) and "." in v}
    for topic in sorted(published - declared):
        found.append(f"the code publishes to {topic}, which is not declared")
    for topic in sorted(published - set(topics)):
        found.append(f"the code publishes to {topic}, which Terraform does not create")
    return found


def _subscriptions(model: Model) -> list[str]:
    found = []
    body = model.tf.resources.get(("google_pubsub_subscription", "push"), {})
    instances = model.instances("google_pubsub_subscription", "push") if body else {}
    push, retry = _one(body.get("push_config")), _one(body.get("retry_policy"))
    dead_letter = _one(body.get("dead_letter_policy"))
    for name, fn in model.declaration.functions.items():
        if not isinstance(fn.trigger, PubSubTrigger):
            continue
        trigger, raw = fn.trigger, model.raw["functions"][name]
        if name not in instances:
            found.append(f"function {name} listens to {trigger.topic} but has no push subscription")
            continue
        topic = re.fullmatch(
            r"google_pubsub_topic\.topics\[each\.value\.trigger\.topic\]\.id", _expression(body.get("topic")) or ""
        )
        if not topic:
            found.append(f"the push subscription of {name} is not on its declared topic")
        if _expression(push.get("push_endpoint")) not in (
            "google_cloudfunctions2_function.functions[each.key].service_config[0].uri",
            "google_cloudfunctions2_function.functions[each.key].url",
        ):
            found.append(f"the push subscription of {name} does not push to its function")
        if not _one(push.get("oidc_token")).get("service_account_email"):
            found.append(f"the push subscription of {name} sends no OIDC token")
        if not dead_letter.get("dead_letter_topic"):
            found.append(f"the push subscription of {name} has no dead-letter topic")
        checks = {
            "ordering": (body.get("enable_message_ordering"), trigger.ordering),
            "ack deadline": (body.get("ack_deadline_seconds"), trigger.ack_deadline_seconds),
            "delivery attempts": (dead_letter.get("max_delivery_attempts"), trigger.max_delivery_attempts),
        }
        for what, (value, wanted) in checks.items():
            if evaluate(value, raw) != wanted:
                found.append(f"push subscription of {name}: {what} is {evaluate(value, raw)!r}, declared {wanted!r}")
        backoff = (
            _seconds(evaluate(retry.get("minimum_backoff"), raw)),
            _seconds(evaluate(retry.get("maximum_backoff"), raw)),
        )
        if backoff != (trigger.min_backoff_seconds, trigger.max_backoff_seconds):
            declared = (trigger.min_backoff_seconds, trigger.max_backoff_seconds)
            found.append(f"push subscription of {name}: retry backoff {backoff}, declared {declared}")
    dead_topics = model.instances("google_pubsub_topic", "dead_letters")
    agent = model.instances("google_pubsub_topic_iam_member", "agent_publishes_dead_letters")
    for name in instances:
        if name not in dead_topics:
            found.append(f"no dead-letter topic exists for {name}")
        if name not in agent:
            found.append(f"the Pub/Sub service agent may not publish to the dead-letter topic of {name}")
    return found


def _storage(model: Model) -> list[str]:
    found = []
    [(_, body)] = model.tf.of_type("google_cloudfunctions2_function").items()
    dynamic = _dynamic(body, "event_trigger")
    for name, fn in model.declaration.functions.items():
        wants = isinstance(fn.trigger, StorageTrigger)
        has = dynamic is not None and model.members(_expression(dynamic.get("for_each")) or "", name)
        if wants and not has:
            found.append(f"function {name} watches bucket {fn.trigger.bucket} but has no Eventarc trigger")  # type: ignore[union-attr]
        if has and not wants:
            found.append(f"function {name} has a storage trigger it does not declare")
        if wants and dynamic is not None:
            content = _one(dynamic.get("content"))
            if content.get("event_type") != "google.cloud.storage.object.v1.finalized":
                found.append(f"the trigger of {name} is not on object finalize")
            bucket = _expression(_one(content.get("event_filters")).get("value")) or ""
            resource = f"google_storage_bucket.{fn.trigger.bucket}.name"  # type: ignore[union-attr]
            if bucket != resource or ("google_storage_bucket", fn.trigger.bucket) not in model.tf.resources:  # type: ignore[union-attr]
                found.append(f"the trigger of {name} does not watch the {fn.trigger.bucket} bucket")  # type: ignore[union-attr]
    return found


def _queues(model: Model) -> list[str]:
    found = []
    queues = model.instances("google_cloud_tasks_queue", "queues")
    body = model.tf.resources.get(("google_cloud_tasks_queue", "queues"), {})
    retry, rate = _one(body.get("retry_config")), _one(body.get("rate_limits"))
    for name, queue in model.declaration.queues.items():
        if name not in queues:
            found.append(f"queue {name} is declared but Terraform creates no such queue")
            continue
        raw = model.raw["queues"][name]
        actual = {
            "max_attempts": evaluate(retry.get("max_attempts"), raw),
            "min_backoff_seconds": _seconds(evaluate(retry.get("min_backoff"), raw)),
            "max_backoff_seconds": _seconds(evaluate(retry.get("max_backoff"), raw)),
            "max_doublings": evaluate(retry.get("max_doublings"), raw),
            "max_dispatches_per_second": evaluate(rate.get("max_dispatches_per_second"), raw),
            "max_concurrent_dispatches": evaluate(rate.get("max_concurrent_dispatches"), raw),
        }
        for setting, value in actual.items():
            if value != getattr(queue, setting):
                found.append(f"queue {name}: {setting} is {value!r} in Terraform, {getattr(queue, setting)!r} locally")
    for name, fn in model.declaration.functions.items():
        if isinstance(fn.trigger, TaskQueueTrigger) and name not in model.instances(
            "google_cloud_run_service_iam_member", "tasks"
        ):
            found.append(f"the task identity may not invoke {name}")
    return found


def _schedules(model: Model) -> list[str]:
    found = []
    jobs = model.instances("google_cloud_scheduler_job", "schedules")
    body = model.tf.resources.get(("google_cloud_scheduler_job", "schedules"), {})
    target = _one(body.get("http_target"))
    for name, fn in model.declaration.functions.items():
        if not isinstance(fn.trigger, ScheduleTrigger):
            if name in jobs:
                found.append(f"function {name} has a schedule it does not declare")
            continue
        if name not in jobs:
            found.append(f"function {name} is scheduled ({fn.trigger.cron}) but has no Cloud Scheduler job")
            continue
        raw = model.raw["functions"][name]
        if evaluate(body.get("schedule"), raw) != fn.trigger.cron:
            found.append(f"the job of {name} runs on another schedule")
        zone = evaluate(body.get("time_zone"), raw)
        if zone != fn.trigger.time_zone:
            found.append(f"the job of {name} is in time zone {zone}, declared {fn.trigger.time_zone}")
        if not _one(target.get("oidc_token")).get("service_account_email"):
            found.append(f"the job of {name} sends no OIDC token")
    return found


_ROLE_GRANTS = {  # IAM member resources that grant a function's declared roles, by scope
    ("google_project_iam_member", "functions"): "project",
    ("google_kms_crypto_key_iam_member", "functions"): "token_key",
    ("google_storage_bucket_iam_member", "functions"): "documents_bucket",
    ("google_service_account_iam_member", "functions_own_account"): "own_account",
    ("google_service_account_iam_member", "functions_task_identity"): "task_identity",
}
_FUNCTION_MEMBER = "google_service_account.functions[each.value.function].member"
_SECRET_GRANT = ("google_secret_manager_secret_iam_member", "functions")


def _roles(model: Model) -> list[str]:
    """Each function's account gets exactly its declared roles, and no resource grants it more."""
    found = []
    scoped = model.tf.locals.get("scoped_roles")
    if not isinstance(scoped, dict):
        return ["unreadable: local.scoped_roles is not a map of role to scope"]
    grants_by_scope = {}
    for (kind, name), body in model.tf.resources.items():
        member = _expression(body.get("member")) or ""
        if "google_service_account.functions[" not in member:
            continue
        scope = _ROLE_GRANTS.get((kind, name))
        for_each = _expression(body.get("for_each")) or ""
        if (kind, name) == _SECRET_GRANT and for_each == "local.function_secrets":
            continue  # reading its declared secrets (_secrets)
        match = re.fullmatch(
            r"\{\s*for key, grant in local\.function_roles : key => grant if grant\.scope == \"(\w+)\"\s*\}", for_each
        )
        if scope is None or member != _FUNCTION_MEMBER or not match or match.group(1) != scope:
            found.append(f"{kind}.{name} grants a function's account something not declared")
            continue
        if _expression(body.get("role")) != "each.value.role":
            found.append(f"{kind}.{name} grants another role than the declared one")
            continue
        grants_by_scope[scope] = True
    roles = _expression(model.tf.locals.get("function_roles")) or ""
    if '"roles/${role}"' not in roles:
        found.append("local.function_roles does not grant the declared role names")
    if 'lookup(local.scoped_roles, role, "project")' not in roles:
        found.append("local.function_roles does not scope roles by local.scoped_roles")
    for name, fn in model.declaration.functions.items():
        for role in fn.roles:
            scope = scoped.get(role, "project")
            if scope not in grants_by_scope:
                found.append(f"function {name}: role {role} (scope {scope}) is granted by no resource")
    return found


def _secrets(model: Model) -> list[str]:
    """Each declared secret exists in Secret Manager and is readable by its function."""
    found = []
    secrets = model.tf.resources.get(("google_secret_manager_secret", "secrets"))
    if secrets is None:
        return ["no google_secret_manager_secret.secrets"]
    names: set[str] = set()
    for local in ("secrets_set_by_ops", "generated_secret_names"):
        expression = _expression(model.tf.locals.get(local)) or ""
        names |= set(re.findall(r'"(\w+)"', expression))
    grant = model.tf.resources.get(_SECRET_GRANT, {})
    if _expression(grant.get("for_each")) != "local.function_secrets" or "try(fn.secrets, [])" not in str(
        model.tf.locals.get("function_secrets")
    ):
        found.append("functions are not granted exactly their declared secrets")
    for name, fn in model.declaration.functions.items():
        for secret in fn.secrets:
            if secret not in names:
                found.append(f"function {name} reads secret {secret}, which Terraform does not create")
    return found
