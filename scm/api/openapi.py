"""The OpenAPI 3.1 document of ``/api/v1``; tests run schemathesis against it on the live app."""

from flask import current_app

from scm.stamping.window import WINDOW_CODES


def _problem(description):
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _json(description, ref):
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


SERIAL = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$", "minLength": 1, "maxLength": 64,
          "example": "SN-2026-000001"}
TIMESTAMP = {"type": "string", "format": "date-time", "example": "2026-11-23T09:30:00+07:00",
             "description": "ISO 8601 with an offset (Z or +07:00)."}
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
RATE_LIMITED = {**_problem("Too many requests for this token (code `rate_limited`): the limit is "
                           "`SCM_API_RATE_LIMIT`, 3000 a minute unless the distributor set another. Wait the "
                           "seconds of `Retry-After`, then retry."),
                "headers": {"Retry-After": {"description": "Seconds to wait before the next request.",
                                            "schema": {"type": "integer", "minimum": 0}}}}
WAPU_NOT_ACTIVE = {
    "description": (
        "The WAPU may not reserve today (code `wapu_not_active`); `reason` says why: `suspended` (the "
        "distributor suspended it), `no_contract` (no contract has started yet) or `contract_ended` (its "
        "contract expired or was terminated and no other is in force). Contract days are WIB calendar "
        "days: a renewal without a gap keeps reservations working across midnight WIB. The token is the "
        "WAPU's, not the contract's: it keeps working across renewals and after a reactivation. Reservations "
        "already made can still be committed or released, and batches of stamps already made are recorded."),
    "content": {"application/problem+json": {
        "schema": {"$ref": "#/components/schemas/Problem"},
        "example": {"type": "about:blank", "status": 403, "title": "The WAPU is suspended",
                    "code": "wapu_not_active", "reason": "suspended"}}},
}
AUTH_ERRORS = {"401": _problem("Missing, unknown or revoked token (code `invalid_token`)."), "429": RATE_LIMITED}
BODY_ERRORS = {
    "400": _problem("Malformed JSON (code `malformed_json`)."),
    "413": _problem("Body larger than the limit (code `payload_too_large`)."),
    "422": _problem("Invalid fields (code `validation_error`); `errors` names each field."),
}


def openapi_document():
    types = list(current_app.config["DOCUMENT_TYPES"])
    serial_param = {"name": "serial", "in": "path", "required": True, "schema": SERIAL}
    stamp_ref = "#/components/schemas/Stamp"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SCM Meterai stamping API",
            "version": "1.0.0",
            "description": (
                "Stamping systems report the use of e-Meterai quota: reserve one e-Meterai per serial, "
                "then commit it when the document is stamped or release it when stamping failed. "
                "A reservation not committed in time is released automatically. Every call is safe "
                "to retry: an identical retry answers with the first result and changes nothing."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": {
            "/quota": {"get": {
                "operationId": "getQuota", "summary": "The WAPU's quota balance",
                "responses": {"200": _json("Balances", "#/components/schemas/Quota"), **AUTH_ERRORS},
            }},
            "/stamps": {
                "post": {
                    "operationId": "reserveStamp", "summary": "Reserve one e-Meterai for a serial",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/ReserveRequest"}}}},
                    "responses": {
                        "201": _json("Reserved", stamp_ref),
                        "200": _json("An identical retry: the same stamp", stamp_ref),
                        "403": WAPU_NOT_ACTIVE,
                        "409": _problem("`serial_conflict` (serial used with other content or by another WAPU) "
                                        "or `insufficient_quota` (with `available`)."),
                        **AUTH_ERRORS, **BODY_ERRORS,
                    },
                },
                "get": {
                    "operationId": "listStamps",
                    "summary": "Stamp history, newest recorded first (keyset pagination)",
                    "description": ("Stamps in the order the system recorded them, newest first (a stamp reported "
                                    "late by a batch comes before older API stamps). `from` and `to` filter on the "
                                    "time the stamp happened: its reservation or stamping, or the `stamped_at` a "
                                    "batch reported. Pass `next_cursor` back as `cursor` for the next page; a page "
                                    "never skips or repeats a stamp."),
                    "parameters": [
                        {"name": "state", "in": "query", "schema": {"type": "string",
                                                                    "enum": ["reserved", "stamped", "failed", "released"]}},
                        {"name": "from", "in": "query", "schema": TIMESTAMP},
                        {"name": "to", "in": "query", "schema": TIMESTAMP},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                                                                    "default": 100}},
                    ],
                    "responses": {"200": _json("A page of stamps", "#/components/schemas/StampPage"),
                                  "422": _problem("Invalid query parameters."), **AUTH_ERRORS},
                },
            },
            "/stamps/{serial}/commit": {"post": {
                "operationId": "commitStamp", "summary": "The document was stamped: consume the reserved e-Meterai",
                "parameters": [serial_param],
                "responses": {
                    "200": _json("Stamped (also for a retry)", stamp_ref),
                    "404": _problem("No such serial for this WAPU (code `not_found`)."),
                    "409": _problem("`reservation_released` (released or expired: reserve again) or `stamp_failed`."),
                    **AUTH_ERRORS,
                },
            }},
            "/stamps/{serial}/release": {"post": {
                "operationId": "releaseStamp", "summary": "Stamping failed: give the reserved e-Meterai back",
                "parameters": [serial_param],
                "requestBody": {"required": False, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ReleaseRequest"}}}},
                "responses": {
                    "200": _json("Released (also for a retry)", stamp_ref),
                    "404": _problem("No such serial for this WAPU (code `not_found`)."),
                    "409": _problem("`already_stamped` or `stamp_failed`."),
                    **AUTH_ERRORS, **BODY_ERRORS,
                },
            }},
            "/stamps/batch": {"post": {
                "operationId": "reportBatch", "summary": "Report up to 1,000 stamps after the fact",
                "description": ("Each event is applied once: `stamped` consumes one e-Meterai, `failed` consumes "
                                "nothing. Retrying the whole batch is safe (`duplicate`). Stamps already made are "
                                "recorded even when the WAPU has since been suspended: they are billed. A new "
                                "event's `stamped_at` must lie in the stamp time window, else that event (only) is "
                                "refused with `limit` (the limit it crossed, ISO 8601) and `detail`: "
                                "`stamped_at_in_future` (more than a few minutes after now, "
                                "`SCM_STAMP_MAX_FUTURE_MINUTES`), `stamped_at_before_contract` (before the WAPU's "
                                "first contract started; `limit` null when it has none) or `stamped_at_too_old` "
                                "(before the first day of the month `SCM_STAMP_LOOKBACK_MONTHS` months back, WIB; "
                                "only the distributor admin can still import those, from a usage file)."),
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/BatchRequest"}}}},
                "responses": {"200": _json("One result per event, in order", "#/components/schemas/BatchResult"),
                              **AUTH_ERRORS, **BODY_ERRORS},
            }},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "An API token created for the WAPU (shown once)."}},
            "schemas": {
                "Quota": {"type": "object", "required": ["available", "reserved", "consumed", "issued"],
                          "properties": {k: {"type": "integer", "minimum": 0}
                                         for k in ("available", "reserved", "consumed", "issued")}},
                "ReserveRequest": {"type": "object", "required": ["serial", "document_type"], "properties": {
                    "serial": SERIAL,
                    "document_type": {"type": "string", "enum": types},
                    "document_number": {"type": "string", "maxLength": 100},
                    "document_date": TIMESTAMP,
                }},
                "ReleaseRequest": {"type": "object", "properties": {"reason": {"type": "string", "maxLength": 200}}},
                "BatchEvent": {"type": "object", "required": ["serial", "status", "stamped_at", "document_type"],
                               "properties": {
                                   "serial": SERIAL,
                                   "status": {"type": "string", "enum": ["stamped", "failed"]},
                                   "stamped_at": TIMESTAMP,
                                   "document_type": {"type": "string", "enum": types},
                                   "document_number": {"type": "string", "maxLength": 100},
                                   "document_date": TIMESTAMP,
                               }},
                "BatchRequest": {"type": "object", "required": ["events"], "properties": {
                    "events": {"type": "array", "minItems": 1, "maxItems": 1000,
                               "items": {"$ref": "#/components/schemas/BatchEvent"}}}},
                "BatchResult": {"type": "object", "required": ["results", "counts"], "properties": {
                    "results": {"type": "array", "items": {"type": "object", "required": ["serial", "result"],
                                                           "properties": {
                        "serial": {"type": "string"},
                        "result": {"type": "string", "enum": ["applied", "duplicate", "committed", "released",
                                                              "serial_conflict", "insufficient_quota",
                                                              "reservation_released", *WINDOW_CODES]},
                        "limit": {"type": ["string", "null"], "format": "date-time",
                                  "description": "For a stamped_at_* refusal: the limit crossed."},
                        "detail": {"type": "string",
                                   "description": "For a stamped_at_* refusal: why, with the limit."}}}},
                    "counts": {"type": "object", "additionalProperties": {"type": "integer"}}}},
                "Stamp": {"type": "object", "required": ["serial", "state", "document_type"], "properties": {
                    "serial": {"type": "string"},
                    "state": {"type": "string", "enum": ["reserved", "stamped", "failed", "released"]},
                    "document_type": {"type": "string"},
                    "document_number": {"type": ["string", "null"]},
                    "document_date": {"type": ["string", "null"]},
                    "reserved_at": NULLABLE_TIMESTAMP, "expires_at": NULLABLE_TIMESTAMP,
                    "stamped_at": NULLABLE_TIMESTAMP, "released_at": NULLABLE_TIMESTAMP,
                    "release_reason": {"type": ["string", "null"]},
                    "source": {"type": "string", "enum": ["api", "batch", "file"]},
                }},
                "StampPage": {"type": "object", "required": ["items", "next_cursor"], "properties": {
                    "items": {"type": "array", "items": {"$ref": stamp_ref}},
                    "next_cursor": {"type": ["string", "null"]}}},
                "Problem": {"type": "object", "required": ["status", "title", "code"], "properties": {
                    "type": {"type": "string"}, "status": {"type": "integer"}, "title": {"type": "string"},
                    "code": {"type": "string"}, "detail": {"type": "string"},
                    "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
                    "available": {"type": "integer"}, "state": {"type": "string"},
                    "reason": {"type": "string", "enum": ["suspended", "no_contract", "contract_ended"],
                               "description": "With `wapu_not_active`: why the WAPU may not reserve."}}},
            },
        },
    }
