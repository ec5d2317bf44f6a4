"""The project's alerts: the automations of ``alerts.yaml``, created or updated on a Prefect server.

``alerts.yaml`` (beside ``prefect.yaml``) declares each automation as
Prefect does (name, description, trigger), with a ``notify`` of a subject
and a body in place of the actions: which action sends them depends on the
block the alerts go through, and that is chosen when they are created
(``segment alerts --block TYPE/NAME``). A Webhook block is called with a
JSON body; a notification block (Slack, Microsoft Teams, email, ...) is
asked to notify with the subject and the body.

Automations are matched by name, so creating them again updates them in
place: running the command twice leaves one automation of each name.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from somseg.errors import ConfigError, ServerUnavailableError

if TYPE_CHECKING:
    from prefect.events.schemas.automations import AutomationCore

ALERTS_FILE = "alerts.yaml"
BLOCK_ENV = "SOMSEG_ALERT_BLOCK"
DEFAULT_BLOCK = "webhook/somseg-alerts"
AUTOMATION_TAG = "somseg"
WEBHOOK_BLOCK_TYPE = "webhook"
NOTIFY_CAPABILITY = "notify"

_ALERT_KEYS = {"name", "description", "trigger", "notify", "actions"}
_NOTIFY_KEYS = {"subject", "body"}


@dataclass(frozen=True)
class Alert:
    """One automation of ``alerts.yaml``: when it fires, and what its message says."""

    name: str
    description: str
    trigger: dict[str, Any]
    subject: str
    body: str
    actions: tuple[dict[str, Any], ...] = ()  # Prefect actions of its own, taken before any message is sent


@dataclass(frozen=True)
class Channel:
    """The block the alerts are sent through, and so the kind of action that sends them."""

    reference: str
    block_document_id: str
    kind: Literal["webhook", "notification"]


class AutomationClient(Protocol):
    """The part of Prefect's client that :func:`apply_automations` uses."""

    def read_automations_by_name(self, name: str) -> list[Any]: ...

    def create_automation(self, automation: "AutomationCore") -> Any: ...

    def update_automation(self, automation_id: Any, automation: "AutomationCore") -> None: ...

    def delete_automation(self, automation_id: Any) -> None: ...


class BlockClient(Protocol):
    """The part of Prefect's client that :func:`resolve_channel` uses."""

    def read_block_document_by_name(self, name: str, block_type_slug: str) -> Any: ...


def default_block() -> str:
    """The block alerts go through unless the command names one: ``$SOMSEG_ALERT_BLOCK`` or ``webhook/somseg-alerts``."""
    return os.environ.get(BLOCK_ENV) or DEFAULT_BLOCK


def load_alerts(path: str | Path) -> list[Alert]:
    """Read and check the automations of an alerts file.

    Parameters
    ----------
    path : str or Path
        A YAML file with a list ``automations``, each with ``name``,
        ``trigger`` and ``notify: {subject, body}`` (``description``
        optional).

    Returns
    -------
    list of Alert

    Raises
    ------
    ConfigError
        If the file cannot be read, an entry lacks a key or has an unknown
        one, two entries share a name, or a subject or body is not a valid
        Jinja template.
    """
    import jinja2
    import yaml

    where = Path(path)
    try:
        data = yaml.safe_load(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"alerts file {where} does not exist; run from the repository root or give --file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"alerts file {where} cannot be read: {error}") from None
    entries = data.get("automations") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"alerts file {where}: expected a non-empty list 'automations'")
    alerts: list[Alert] = []
    for position, entry in enumerate(entries, start=1):
        label = f"alerts file {where}, automation {position}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{label}: expected a mapping with name, trigger and notify")
        label = f"alerts file {where}, automation {entry.get('name', position)!s}"
        missing, unknown = {"name", "trigger"} - set(entry), set(entry) - _ALERT_KEYS
        if "notify" not in entry and "actions" not in entry:
            missing.add("notify or actions")
        if missing or unknown:
            raise ConfigError(f"{label}: " + "; ".join(
                ([f"missing {', '.join(sorted(missing))}"] if missing else [])
                + ([f"unknown {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(_ALERT_KEYS))})"] if unknown else [])
            ))
        notify = entry.get("notify", {"subject": "", "body": ""})
        if not isinstance(notify, dict) or set(notify) != _NOTIFY_KEYS:
            raise ConfigError(f"{label}: notify needs exactly a subject and a body")
        actions = entry.get("actions", [])
        if not isinstance(actions, list) or not all(isinstance(action, dict) and "type" in action for action in actions):
            raise ConfigError(f"{label}: actions must be a list of Prefect actions, each with a type")
        if not isinstance(entry["trigger"], dict):
            raise ConfigError(f"{label}: trigger must be a mapping (a Prefect trigger: type, match, expect, ...)")
        for key in sorted(_NOTIFY_KEYS):
            try:
                jinja2.Environment().parse(str(notify[key]))
            except jinja2.TemplateSyntaxError as error:
                raise ConfigError(f"{label}: notify.{key} is not a valid template: {error} (line {error.lineno})") from None
        alerts.append(Alert(
            name=str(entry["name"]), description=str(entry.get("description") or ""), trigger=entry["trigger"],
            subject=str(notify["subject"]).strip(), body=str(notify["body"]).strip(), actions=tuple(actions),
        ))
    names = [alert.name for alert in alerts]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"alerts file {where}: automation names must be unique; repeated: {', '.join(twice)}")
    return alerts


def parse_block_reference(reference: str) -> tuple[str, str]:
    """``TYPE/NAME`` (as ``prefect block ls`` lists blocks) as its block type slug and block name.

    Raises
    ------
    ConfigError
        If ``reference`` is not of that form.
    """
    slug, _, name = reference.partition("/")
    if not slug or not name or "/" in name:
        raise ConfigError(f"block {reference!r}: give it as TYPE/NAME, as 'prefect block ls' lists it, "
                          f"for example {DEFAULT_BLOCK} or slack-webhook/data-team")
    return slug, name


def webhook_payload(subject: str, body: str) -> str:
    """The JSON body a Webhook block sends: the rendered message, the event's name, resource and payload.

    ``text`` holds the subject and the body, the field a Slack incoming
    webhook shows; ``payload`` is the triggering event's payload (for a
    drift event, the figures).
    """
    # Rendered once into variables, then quoted by tojson, so that any text the
    # templates produce (quotes, newlines) stays valid JSON.
    return (
        "{% set subject %}" + subject + "{% endset %}"
        "{% set body %}" + body + "{% endset %}"
        '{"automation": {{ automation.name | tojson }}, '
        '"subject": {{ subject | trim | tojson }}, '
        '"text": {{ (subject | trim ~ "\\n" ~ body | trim) | tojson }}, '
        '"event": {{ event.event | tojson }}, '
        '"occurred": {{ event.occurred | string | tojson }}, '
        '"resource": {{ event.resource.id | tojson }}, '
        '"payload": {{ event.payload | tojson }}}'
    )


def actions_for(alert: Alert, channel: Channel) -> list[dict[str, Any]]:
    """The automation's actions: its own (if any), then the one that sends its message through ``channel``."""
    own = [dict(action) for action in alert.actions]
    if not alert.subject and not alert.body:
        return own
    if channel.kind == "webhook":
        return [*own, {"type": "call-webhook", "block_document_id": channel.block_document_id,
                       "payload": webhook_payload(alert.subject, alert.body)}]
    return [*own, {"type": "send-notification", "block_document_id": channel.block_document_id,
                   "subject": alert.subject, "body": alert.body}]


def automation_data(alert: Alert, channel: Channel) -> dict[str, Any]:
    """``alert`` as the data of a Prefect automation that notifies through ``channel``."""
    return {
        "name": alert.name, "description": alert.description, "enabled": True, "tags": [AUTOMATION_TAG],
        "trigger": alert.trigger, "actions": actions_for(alert, channel),
    }


def build_automations(alerts: Sequence[Alert], channel: Channel) -> list["AutomationCore"]:
    """The automations of ``alerts``, checked against Prefect's schema.

    Raises
    ------
    ConfigError
        If a trigger is not one Prefect accepts, naming the automation.
    """
    from prefect.events.schemas.automations import AutomationCore
    from pydantic import ValidationError

    automations = []
    for alert in alerts:
        try:
            automations.append(AutomationCore.model_validate(automation_data(alert, channel)))
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5])
            raise ConfigError(f"automation {alert.name}: not a valid Prefect automation: {problems}") from None
    return automations


def apply_automations(client: AutomationClient, automations: Sequence["AutomationCore"]) -> list[tuple[str, str]]:
    """Create each automation that does not exist yet, by name, and update the others in place.

    Where several automations already carry a name (made by hand, say), the
    most recently updated one is updated and the others are deleted, so
    each name ends with exactly one.

    Returns
    -------
    list of (str, str)
        Each automation's name and what was done: 'created', 'updated', or
        'updated, N duplicate(s) deleted'.
    """
    done = []
    for automation in automations:
        existing = client.read_automations_by_name(automation.name)
        if not existing:
            client.create_automation(automation)
            done.append((automation.name, "created"))
            continue
        # The client returns them most recently updated first.
        keep, *extra = existing
        client.update_automation(keep.id, automation)
        for duplicate in extra:
            client.delete_automation(duplicate.id)
        done.append((automation.name, f"updated, {len(extra)} duplicate(s) deleted" if extra else "updated"))
    return done


def resolve_channel(client: BlockClient, reference: str, api_url: str) -> Channel:
    """The block ``TYPE/NAME`` on the server, and the kind of action it takes.

    Raises
    ------
    ConfigError
        If the server has no such block, or the block can neither be called
        as a webhook nor notify.
    """
    from prefect.exceptions import ObjectNotFound

    slug, name = parse_block_reference(reference)
    try:
        document = client.read_block_document_by_name(name=name, block_type_slug=slug)
    except ObjectNotFound:
        raise ConfigError(
            f"block {reference} does not exist on the server at {api_url}; create it first (docs/operations.md, "
            "'Alerts'), or give another with --block TYPE/NAME ('prefect block ls' lists them)"
        ) from None
    capabilities = set(document.block_schema.capabilities) if document.block_schema else set()
    if slug == WEBHOOK_BLOCK_TYPE:
        return Channel(reference=reference, block_document_id=str(document.id), kind="webhook")
    if NOTIFY_CAPABILITY in capabilities:
        return Channel(reference=reference, block_document_id=str(document.id), kind="notification")
    raise ConfigError(f"block {reference} can neither be called as a webhook nor send notifications; "
                      "give a Webhook block or a notification block (Slack, Microsoft Teams, email, ...)")


def create_alerts(file: str | Path, block: str) -> int:
    """``segment alerts``: create or update the automations of ``file``, sending through ``block``.

    The file and the block's name are checked before Prefect is imported;
    then the API that Prefect's settings name.

    Returns
    -------
    int
        0 once every automation exists and is up to date.

    Raises
    ------
    ConfigError
        The file is not valid, no Prefect API is configured, or the block
        does not exist or cannot send.
    ServerUnavailableError
        The configured API does not answer.
    """
    alerts = load_alerts(file)
    parse_block_reference(block)
    from prefect import get_client
    from prefect.settings import get_current_settings

    api_url = get_current_settings().api.url
    if not api_url:
        raise ConfigError(
            "no Prefect API is configured: automations live on a Prefect server, so point at it first, e.g. "
            "'prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api' (docs/operations.md)"
        )
    with get_client(sync_client=True) as client:
        unreachable = client.api_healthcheck()
        if unreachable is not None:
            raise ServerUnavailableError(f"the Prefect API at {api_url} does not answer: {unreachable}")
        channel = resolve_channel(client, block, api_url)
        done = apply_automations(client, build_automations(alerts, channel))
    for name, what in done:
        print(f"automation {name}: {what}")
    print(f"{len(done)} automation(s) on {api_url} send through {channel.reference} ({channel.kind})")
    return 0

