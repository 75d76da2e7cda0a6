"""terraform/ deploys exactly what functions/functions.yaml declares, checked without the
terraform binary (tests/terraform/checks.py); and the checks catch a change made on one side
only, on a copy of both."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import hcl2
import pytest

from shared.cloud.declaration import REPO_ROOT, declaration
from tests.terraform.checks import Model, problems

TERRAFORM = REPO_ROOT / "terraform"
DECLARATION = REPO_ROOT / "functions" / "functions.yaml"


def test_terraform_deploys_exactly_the_declaration() -> None:
    assert problems(TERRAFORM, DECLARATION) == []


def test_every_file_parses_and_every_function_kind_is_wired() -> None:
    model = Model(TERRAFORM, DECLARATION)
    kinds = {fn.trigger.kind for fn in declaration().functions.values()}
    assert kinds == {"http", "pubsub", "storage", "task_queue", "schedule"}  # each kind is covered below
    assert set(model.instances("google_cloudfunctions2_function", "functions")) == set(declaration().functions)
    assert set(model.instances("google_pubsub_subscription", "push")) == {
        name for name, fn in declaration().functions.items() if fn.trigger.kind == "pubsub"
    }
    assert set(model.instances("google_cloud_scheduler_job", "schedules")) == {
        name for name, fn in declaration().functions.items() if fn.trigger.kind == "schedule"
    }
    public = {name for name, fn in declaration().functions.items() if getattr(fn.trigger, "public", False)}
    assert set(model.instances("google_compute_backend_service", "public")) == public
    assert "whatsapp-webhook" in public


@pytest.fixture
def copy(tmp_path: Path) -> tuple[Path, Path]:
    """terraform/ and functions/functions.yaml side by side, as in the repository."""
    shutil.copytree(TERRAFORM, tmp_path / "terraform")
    (tmp_path / "functions").mkdir()
    shutil.copy(DECLARATION, tmp_path / "functions" / "functions.yaml")
    return tmp_path / "terraform", tmp_path / "functions" / "functions.yaml"


def mutate(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"the mutation's anchor is not unique in {path.name}: {old!r}"
    path.write_text(text.replace(old, new))


MUTATIONS = {
    # (file, text to replace, replacement, a problem that must be reported)
    "ordering dropped in Terraform": (
        "pubsub.tf",
        "enable_message_ordering    = try(each.value.trigger.ordering, false)",
        "enable_message_ordering    = false",
        "push subscription of conversation: ordering is False, declared True",
    ),
    "dead-letter policy removed": (
        "pubsub.tf",
        "  dead_letter_policy {\n    dead_letter_topic     = google_pubsub_topic.dead_letters[each.key].id\n",
        "  dead_letter_policy {\n",
        "the push subscription of conversation has no dead-letter topic",
    ),
    "OIDC token removed": (
        "pubsub.tf",
        "      service_account_email = google_service_account.pubsub_push.email\n      audience ",
        "      audience ",
        "the push subscription of message-status sends no OIDC token",
    ),
    "a Terraform default drifts from the declaration's": (
        "pubsub.tf",
        "try(each.value.trigger.ack_deadline_seconds, 60)",
        "try(each.value.trigger.ack_deadline_seconds, 30)",
        "push subscription of message-status: ack deadline is 30, declared 60",
    ),
    "pubsub trigger filter misspelt": (
        "main.tf",
        'fn.trigger.kind == "pubsub"',
        'fn.trigger.kind == "pub_sub"',
        "function conversation listens to whatsapp.incoming.messages but has no push subscription",
    ),
    "storage trigger removed": (
        "functions.tf",
        "for_each = contains(keys(local.storage_functions), each.key) ? [each.value.trigger] : []",
        "for_each = contains(keys(local.http_functions), each.key) ? [each.value.trigger] : []",
        "function document-ingest watches bucket documents but has no Eventarc trigger",
    ),
    "retry setting changed in Terraform only": (
        "triggers.tf",
        'min_backoff   = "${each.value.min_backoff_seconds}s"',
        'min_backoff   = "5s"',
        "queue whatsapp-send: min_backoff_seconds is 5.0 in Terraform, 1.0 locally",
    ),
    "scheduler time zone hard-coded": (
        "triggers.tf",
        'time_zone        = try(each.value.trigger.time_zone, "Etc/UTC")',
        'time_zone        = "Etc/UTC"',
        "the job of retention-purge is in time zone Etc/UTC, declared Asia/Jakarta",
    ),
    "entry point hard-coded": (
        "functions.tf",
        "entry_point       = each.value.entry_point",
        'entry_point       = "main"',
        "function conversation: entry point is 'main' in Terraform, 'handle_incoming_message' in the declaration",
    ),
    "a role granted beyond the declaration": (
        "functions.tf",
        'resource "google_project_iam_member" "build" {',
        'resource "google_project_iam_member" "extra" {\n  for_each = local.functions\n  project  = var.project\n'
        '  role     = "roles/editor"\n  member   = google_service_account.functions[each.key].member\n}\n\n'
        'resource "google_project_iam_member" "build" {',
        "google_project_iam_member.extra grants a function's account something not declared",
    ),
    "a role scope with no grant": (
        "main.tf",
        '"iam.serviceAccountUser"         = "task_identity"',
        '"iam.serviceAccountUser"         = "tasks_sa"',
        "function conversation: role iam.serviceAccountUser (scope tasks_sa) is granted by no resource",
    ),
}

DECLARATION_MUTATIONS = {
    # (text in functions.yaml, replacement, a problem that must be reported)
    "a topic the code publishes removed from the declaration": (
        "  - conversation.completed\n",
        "",
        "the code publishes to conversation.completed, which is not declared",
    ),
    "a queue's retry changed in the declaration only": (
        "    max_attempts: 10\n",
        "    max_attempts: 12\n",
        "",  # Terraform reads the declaration: still consistent, no problem
    ),
    "a new scheduled function is deployed with its job": (
        "  billing-period-close:\n",
        "  daily-metrics:\n    entry_point: daily_metrics\n    description: x\n    trigger:\n      kind: schedule\n"
        '      cron: "0 1 * * *"\n      time_zone: Asia/Jakarta\n\n  billing-period-close:\n',
        "",
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_change_to_terraform_alone_is_caught(copy: tuple[Path, Path], mutation: str) -> None:
    terraform, yaml_path = copy
    file, old, new, expected = MUTATIONS[mutation]
    mutate(terraform / file, old, new)
    found = problems(terraform, yaml_path)
    assert expected in found, found


@pytest.mark.parametrize("mutation", sorted(DECLARATION_MUTATIONS))
def test_a_change_to_the_declaration_is_followed_or_caught(copy: tuple[Path, Path], mutation: str) -> None:
    terraform, yaml_path = copy
    old, new, expected = DECLARATION_MUTATIONS[mutation]
    mutate(yaml_path, old, new)
    found = problems(terraform, yaml_path)
    assert (expected in found) if expected else found == [], found


def test_a_removed_scheduler_job_leaves_every_scheduled_function_unscheduled(copy: tuple[Path, Path]) -> None:
    terraform, yaml_path = copy
    text = (terraform / "triggers.tf").read_text()
    start = text.index('resource "google_cloud_scheduler_job" "schedules"')
    (terraform / "triggers.tf").write_text(text[:start])
    found = problems(terraform, yaml_path)
    scheduled = [name for name, fn in declaration().functions.items() if fn.trigger.kind == "schedule"]
    assert scheduled
    for name in scheduled:
        assert any(problem.startswith(f"function {name} is scheduled") for problem in found), found


def test_the_public_origin_routes_each_public_function_by_its_name() -> None:
    edge = hcl2.loads((TERRAFORM / "edge.tf").read_text())
    text = (TERRAFORM / "edge.tf").read_text()
    assert edge
    assert 'prefix_match = "/${route_rules.key}/"' in text
    assert 'path_prefix_rewrite = "/"' in text  # the function sees "/..." as it does locally
    # The webhook is exempt from the per-IP limit, the staff APIs are not.
    assert re.search(r"!request\.path\.startsWith\('/whatsapp-webhook'\)", text)


def test_monitoring_defines_the_three_alerts_dashboard_and_uptime_check() -> None:
    model = Model(TERRAFORM, DECLARATION)
    alerts = {name: body for name, body in model.tf.of_type("google_monitoring_alert_policy").items()}
    assert {"error_rate", "latency", "tenant_over_quota"} <= set(alerts)
    error = alerts["error_rate"]["conditions"][0]["condition_threshold"][0]
    assert (error["threshold_value"], error["duration"]) == (0.05, "300s")
    latency = alerts["latency"]["conditions"][0]["condition_threshold"][0]
    assert (latency["threshold_value"], latency["duration"]) == (5000, "600s")
    assert latency["aggregations"][0]["cross_series_reducer"] == "REDUCE_PERCENTILE_95"
    assert model.tf.of_type("google_monitoring_dashboard")
    [uptime] = model.tf.of_type("google_monitoring_uptime_check_config").values()
    assert uptime["http_check"][0]["path"] == "/whatsapp-webhook/health"


def test_log_based_metrics_match_the_lines_the_code_writes() -> None:
    """The metrics filter on log messages; each must be a message some code path logs."""
    model = Model(TERRAFORM, DECLARATION)
    filters = [str(body["filter"]) for body in model.tf.of_type("google_logging_metric").values()]
    filters.append(str(model.tf.locals["quota_filter"]))
    messages = set(re.findall(r'jsonPayload\.message = \\?"([^"\\]+)\\?"', " ".join(filters)))
    messages |= {m + "%" for m in re.findall(r'jsonPayload\.message =~ \\?"\^([^"\\]+)\\?"', " ".join(filters))}
    assert len(messages) >= 4
    sources = "".join(p.read_text() for p in (REPO_ROOT / "shared").rglob("*.py"))
    for message in messages:
        assert message.rstrip("%") in sources, f"no code logs {message!r}"


def test_only_public_and_operator_functions_accept_traffic_from_outside() -> None:
    model = Model(TERRAFORM, DECLARATION)
    [body] = model.tf.of_type("google_cloudfunctions2_function").values()
    ingress = " ".join(str(body["service_config"][0]["ingress_settings"]).split())
    assert ingress == (
        '${(contains(keys(local.public_functions), each.key) ? "ALLOW_INTERNAL_AND_GCLB" : '
        'contains(keys(local.operator_functions), each.key) ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY")}'
    )
    public = set(model.collection("local.public_functions"))
    operators = set(model.collection("local.operator_functions"))
    assert operators == {"database-migrate"}
    assert "conversation" not in public | operators  # reached by its push subscription only
    invoked_by_all = set(model.instances("google_cloud_run_service_iam_member", "public"))
    assert invoked_by_all == public  # allUsers only where the load balancer fronts it
