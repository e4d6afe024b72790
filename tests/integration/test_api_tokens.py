"""API tokens: created by the WAPU's SPV or the distributor admin, shown once, hashed, revocable."""

import re

from sqlalchemy import select

from scm.api.models import ApiToken
from scm.core.models import AuditLog
from scm.extensions import db


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


def test_spv_creates_a_token_shown_once_and_stored_hashed(app, factory, login_as):
    wapu = factory.wapu(901)
    spv = login_as("WAPU_SPV", wapu_id=wapu["id"])
    response = spv.post("/api-tokens", {"name": "Sistem arsip"})
    assert response.headers["Cache-Control"] == "no-store"
    token = re.search(r'data-testid="token">(scm_[^<]+)<', response.get_data(as_text=True)).group(1)
    with app.app_context():
        row = db.session.execute(select(ApiToken)).scalar_one()
        assert row.wapu_id == wapu["id"] and token not in row.token_hash and row.prefix == token[:12]
        assert "api_token.create" in db.session.execute(select(AuditLog.action)).scalars().all()
    listing = spv.get("/api-tokens").get_data(as_text=True)
    assert token[:12] in listing and token not in listing
    api = app.test_client()
    assert api.get("/api/v1/quota", headers=_auth(token)).status_code == 200
    with app.app_context():
        token_id = db.session.execute(select(ApiToken.id)).scalar_one()
    assert spv.post(f"/api-tokens/{token_id}/revoke").status_code == 302
    assert api.get("/api/v1/quota", headers=_auth(token)).status_code == 401


def test_other_roles_and_other_wapus_cannot_manage_tokens(app, factory, login_as):
    wapu = factory.wapu(902)
    other = factory.wapu(903)
    spv = login_as("WAPU_SPV", wapu_id=wapu["id"])
    spv.post("/api-tokens", {"name": "A"})
    with app.app_context():
        token_id = db.session.execute(select(ApiToken.id)).scalar_one()
    for role in ("WAPU_STAFF", "WAPU_FIN"):
        assert login_as(role, wapu_id=wapu["id"]).get("/api-tokens").status_code == 403
    assert login_as("DIST_SPV").get("/api-tokens").status_code == 403
    intruder = login_as("WAPU_SPV", wapu_id=other["id"])
    assert intruder.post(f"/api-tokens/{token_id}/revoke").status_code == 404
    assert "A" not in re.findall(r"<td>([^<]*)</td>", intruder.get("/api-tokens").get_data(as_text=True))
    # The SPV cannot create a token for another WAPU by posting its id.
    spv.post("/api-tokens", {"name": "B", "wapu_id": str(other["id"])})
    with app.app_context():
        assert {t.wapu_id for t in db.session.execute(select(ApiToken)).scalars()} == {wapu["id"]}


def test_distributor_admin_creates_for_any_wapu(app, factory, login_as):
    wapu = factory.wapu(904)
    admin = login_as("DIST_ADMIN")
    page = admin.post("/api-tokens", {"name": "Integrasi", "wapu_id": str(wapu["id"])}).get_data(as_text=True)
    assert re.search(r'data-testid="token">scm_', page)
    assert admin.post("/api-tokens", {"name": "", "wapu_id": str(wapu["id"])}).status_code == 200
    with app.app_context():
        assert db.session.execute(select(ApiToken.wapu_id)).scalars().all() == [wapu["id"]]


def test_cli_creates_a_working_token(app, factory):
    wapu = factory.wapu(905)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["api-token", "create", "--wapu", wapu["code"], "--name", "ERP"])
    assert result.exit_code == 0
    token = result.stdout.strip()  # the token alone: logs go to stderr
    assert token.startswith("scm_")
    response = app.test_client().get("/api/v1/quota", headers=_auth(token))
    assert response.status_code == 200 and response.json == {"available": 0, "reserved": 0, "consumed": 0, "issued": 0}
    bad = runner.invoke(args=["api-token", "create", "--wapu", "W9999", "--name", "ERP"])
    assert bad.exit_code != 0 and "W9999" in bad.output


def test_docs_and_openapi_are_served_without_external_assets(app, client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.") and "/stamps/{serial}/commit" in spec["paths"]
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "reserveStamp" in page and "curl" in page
    assert not re.search(r'(src|href)="https?://', page)
