"""Pure decisions on configuration: templates checked with `jsonschema`, effective configurations
merged and validated, rollbacks. State and command in, an event (or a refusal) out; no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import referencing.exceptions
from jsonschema import Draft4Validator, Draft202012Validator, ValidationError, validators
from jsonschema.protocols import Validator

from projections import config, events, groups
from service import errors
from service.config import patterns as config_patterns
from service.handling import commands

MESSAGE_CHARS = 300  # of a validation message, which may quote a large value


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `override` on top: objects merge key by key, at any depth; anything else
    (a list, a number, null) in `override` replaces what `base` has."""
    merged = dict(base)
    for key, value in override.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = deep_merge(below, value)
        else:
            merged[key] = value
    return merged


def effective(
    template: config.Template | None, environment: str | None, given: Mapping[str, Any]
) -> dict[str, Any]:
    """The template's defaults, then its overrides for `environment`, then `given`."""
    if template is None:
        return dict(given)
    overrides = template.environments.get(environment, {}) if environment else {}
    return deep_merge(deep_merge(template.defaults, overrides), given)


def validator_class(schema: Mapping[str, Any], field: str = "schema") -> type[Validator]:
    """The validator for the schema's `$schema` dialect (Draft 2020-12 when it names none);
    a dialect `jsonschema` does not know is refused."""
    dialect = schema.get("$schema")
    found = validators.validator_for(schema, default=Draft202012Validator)
    # validator_for falls back to its default only for a dialect it does not know
    if dialect is not None and (
        not isinstance(dialect, str)
        or validators.validator_for(schema, default=Draft4Validator) is not found
    ):
        raise errors.ValidationFailedError(
            "the schema names a JSON Schema dialect that is not supported",
            code="invalid_schema",
            details=[{"field": f"{field}.$schema", "message": "not a known dialect"}],
        )
    return found


def violations(
    schema: Mapping[str, Any], instance: Any, field: str, *, partial: bool = False
) -> list[dict[str, Any]]:
    """Where `instance` breaks `schema`: one detail per failing path, in path order, as
    `field` (dotted, under `field`), `pointer` (a JSON pointer into the instance), `message`
    and `type` (the failing keyword). `partial` leaves out missing required properties."""
    validator = config_patterns.linear(validator_class(schema))(schema)
    try:
        found = sorted(
            validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))
        )
    except referencing.exceptions.Unresolvable as exc:
        raise _unusable(
            "has a $ref that cannot be resolved (only references within the schema"
            " itself are followed)",
            str(exc),
        ) from None
    except RecursionError:
        raise _unusable("recurses without end ($ref cycles)", "too deep") from None
    return [_detail(e, field) for e in found if not (partial and e.validator == "required")]


def _unusable(why: str, message: str) -> errors.ValidationFailedError:
    return errors.ValidationFailedError(
        f"the template's schema {why}",
        code="invalid_schema",
        details=[{"field": "schema", "message": message[:MESSAGE_CHARS]}],
    )


def _detail(error: ValidationError, field: str) -> dict[str, Any]:
    path = list(error.absolute_path)
    return {
        "field": ".".join([field, *map(str, path)]),
        "pointer": pointer(path),
        "message": error.message[:MESSAGE_CHARS],
        "type": str(error.validator),
    }


def pointer(path: Iterable[str | int]) -> str:
    """RFC 6901: `["limits", "maxTokens"]` -> `/limits/maxTokens`."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def define_template(
    state: config.ConfigState, command: commands.DefineTemplate
) -> events.ConfigTemplateDefined | None:
    """The template, checked: a valid schema, defaults (alone and with each environment's
    overrides) that break none of its rules but may leave out required properties, which each
    server's config must then give. None when the same template exists already."""
    event = events.ConfigTemplateDefined(
        template_id=command.id,
        json_schema=command.json_schema,
        defaults=command.defaults,
        environments=command.environments,
    )
    existing = state.templates.get(command.id)
    if existing is not None:
        if (existing.json_schema, existing.defaults, existing.environments) == (
            event.json_schema,
            event.defaults,
            event.environments,
        ):
            return None
        raise errors.ConflictError(
            f"config template {command.id!r} exists with a different body; templates do not"
            " change: define a new id and point servers at it",
            code="id_in_use",
        )
    _check_schema(command.json_schema)
    details = violations(command.json_schema, command.defaults, "defaults", partial=True)
    for name, overrides in sorted(command.environments.items()):
        merged = deep_merge(command.defaults, overrides)
        details += violations(command.json_schema, merged, f"environments.{name}", partial=True)
    if details:
        raise errors.ValidationFailedError("the defaults do not match the schema", details=details)
    return event


def _check_schema(schema: Mapping[str, Any]) -> None:
    """The schema against its dialect's meta-schema: one detail per failing path."""
    cls = validator_class(schema)
    # as `check_schema` does, but every error: formats too, so a bad regex is refused here
    meta_cls = validators.validator_for(cls.META_SCHEMA, default=cls)
    meta = meta_cls(cls.META_SCHEMA, format_checker=meta_cls.FORMAT_CHECKER)
    details = [_detail(e, "schema") for e in meta.iter_errors(schema)]
    invalid = {d["field"] for d in details}  # a pattern `re` cannot compile is told once
    details += [
        {"field": field, "pointer": pointer(where), "message": why}
        for where, why in config_patterns.unsupported(schema)
        if (field := ".".join(["schema", *where])) not in invalid
    ]
    if details:
        raise errors.ValidationFailedError(
            "the schema is not a valid JSON Schema", code="invalid_schema", details=details
        )


def configure_server(
    state: config.ConfigState,
    desired: groups.GroupsState,
    server_id: str,
    command: commands.ConfigureServer,
    environment: str | None,
) -> events.ServerConfigured | None:
    """The server's next configuration version, valid against its template; None when it would
    be the current one again (same template, same effective configuration)."""
    _known_server(desired, server_id)
    server = state.of(server_id)
    current = server.active()
    template_id = command.template_id
    if "template_id" not in command.model_fields_set and current is not None:
        template_id = current.template_id  # a server keeps its template
    template = _known_template(state, template_id)
    merged = effective(template, environment, command.config)
    if template is not None:
        details = violations(template.json_schema, merged, "config")
        if details:
            raise errors.ValidationFailedError(
                f"the configuration does not match template {template.id!r}", details=details
            )
    if current is not None and (current.config, current.template_id) == (merged, template_id):
        return None
    return events.ServerConfigured(
        server_id=server_id,
        version=state.next_version(server_id),
        config=merged,
        given=command.config,
        template_id=template_id,
        environment=environment if template is not None else None,
    )


def rollback_config(
    state: config.ConfigState,
    desired: groups.GroupsState,
    server_id: str,
    command: commands.RollbackConfig,
) -> events.ServerConfigured:
    """That version's configuration and template, current again as a new version."""
    _known_server(desired, server_id)
    old = state.of(server_id).versions.get(command.version)
    if old is None:
        raise errors.ValidationFailedError(
            f"{server_id!r} has no configuration version {command.version}",
            code="unknown_config_version",
            details=[{"field": "version", "message": "no such version; see GET .../config"}],
        )
    return events.ServerConfigured(
        server_id=server_id,
        version=state.next_version(server_id),
        config=old.config,
        given=old.given,
        template_id=old.template_id,
        environment=old.environment,
        rolled_back_from=old.version,
    )


def _known_server(desired: groups.GroupsState, server_id: str) -> None:
    if server_id not in desired.servers:
        raise errors.NotFoundError(f"no MCP server {server_id!r}")


def _known_template(state: config.ConfigState, template_id: str | None) -> config.Template | None:
    if template_id is None:
        return None
    template = state.templates.get(template_id)
    if template is None:
        raise errors.ValidationFailedError(
            f"no config template {template_id!r}",
            code="unknown_template",
            details=[{"field": "templateId", "message": "define it first: POST /config-templates"}],
        )
    return template
