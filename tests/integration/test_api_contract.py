"""The OpenAPI document against the live API: schemathesis generates requests for every operation
from /api/v1/openapi.json and checks that no answer is a server error and every answer (status,
content type, body) is one the document describes."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.api_helpers import (
    Api,
    assert_ledger_verifies,
    check_ok,
    event,
    give_quota,
    new_token,
    serve_in_thread,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
OPERATIONS = ["getQuota", "listStamps", "reserveStamp", "commitStamp", "releaseStamp", "reportBatch"]
# schemathesis.pytest.from_fixture() does not run under pytest 9 (it reads Node._nodeid), so the
# operations are parametrized here and the schema is loaded from the live server inside the test.

# Serials that exist, in every state, so that commit and release also meet real stamps, not only 404.
KNOWN = {state: [f"CT-{state}-{i}" for i in range(5)] for state in ("reserved", "stamped", "released", "failed")}


def _seed_stamps(api):
    for serial in KNOWN["reserved"] + KNOWN["stamped"] + KNOWN["released"]:
        check_ok(api.reserve(serial), 201)
    for serial in KNOWN["stamped"]:
        check_ok(api.commit(serial))
    for serial in KNOWN["released"]:
        check_ok(api.release(serial))
    check_ok(api.batch([event(serial, status="failed") for serial in KNOWN["failed"]]))


@pytest.fixture
def live_api(app, factory):
    """The app served on a free port, and a token of a WAPU with plenty of quota and some stamps."""
    wapu = factory.wapu(801)
    token = new_token(app, wapu["id"])
    give_quota(app, wapu["id"], 100_000)
    _seed_stamps(Api(app.test_client(), token))
    with serve_in_thread(app) as base:
        yield {"base": base, "headers": {"Authorization": f"Bearer {token}"},
               "schema": schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")}
    assert_ledger_verifies(app)


def test_the_document_has_exactly_the_tested_operations(live_api):
    schema = live_api["schema"]
    assert sorted(schema.get_operation_id(result.ok()) for result in schema.get_all_operations()) == sorted(OPERATIONS)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_every_operation_answers_as_documented(live_api, operation_id, mode):
    operation = live_api["schema"].find_operation_by_id(operation_id)
    known = st.one_of(st.none(), st.sampled_from([s for serials in KNOWN.values() for s in serials]))

    @given(case=operation.as_strategy(generation_mode=mode), serial=known)
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              derandomize=True)  # the same examples on every run: a failure here is reproducible
    def conforms(case, serial):
        if serial and "serial" in (case.path_parameters or {}):
            case.path_parameters["serial"] = serial
        case.call_and_validate(headers=live_api["headers"], checks=CHECKS)

    conforms()
