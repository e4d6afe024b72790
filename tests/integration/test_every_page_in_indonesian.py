"""Every page of every role, in Indonesian: no message id and no untranslated English text shows.

Two checks on the visible text (and on placeholders, titles and labels) of each page:
- no English msgid of the catalog whose Indonesian translation differs appears as a phrase;
- no run of text reads as English (two or more English function words), which catches text
  that never went through the catalog. Words that are the same in both languages are allowed
  in ALLOWED below, reviewed one by one.
"""

import re
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from scm.core.database import unit_of_work, utcnow
from scm.quota.services import issue_quota
from scm.stamping.services import StampInput, commit_stamp, reserve_stamp
from tests.fixtures.factories import insert_stamps

CATALOG = Path(__file__).resolve().parents[2] / "translations" / "id" / "LC_MESSAGES" / "messages.po"
ENGLISH_WORDS = {"the", "of", "and", "to", "is", "for", "your", "with", "this", "not", "no", "by", "are", "was",
                 "has", "be", "an", "from", "will", "you", "it", "on", "at", "or", "who", "which"}
# Text that is the same in Indonesian, or a name: product names, codes, formats and sample values.
ALLOWED = {"SCM Meterai", "e-Meterai", "WAPU", "NPWP", "NIB", "PIC", "API", "PDF", "XLSX", "CSV", "WIB", "OpenAPI",
           "Bahasa Indonesia", "English"}


@lru_cache(maxsize=1)
def english_phrases():
    """One pattern matching any multi-word English msgid whose Indonesian differs."""
    catalog = read_po(CATALOG.open("rb"))
    phrases = set()
    for message in catalog:
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for msgid in ids:
            if not msgid or any(s == msgid for s in strings):
                continue
            text = re.sub(r"%\(\w+\)[sd]|%[sd]", "\x00", msgid)
            for part in text.split("\x00"):
                part = part.strip(" .,:;()“”\"'-")
                if len(part.split()) >= 2 and len(part) >= 8:
                    phrases.add(part)
    ordered = sorted(phrases, key=len, reverse=True)  # one pattern for all: longest first
    return re.compile("|".join(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])" for phrase in ordered))


def visible_text(html):
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S | re.I)
    html = re.sub(r"<code\b.*?</code>", " ", html, flags=re.S | re.I)  # codes (serials, formats) stay as they are
    attrs = re.findall(r'\b(?:placeholder|title|aria-label|alt)="([^"]*)"', html)
    text = re.sub(r"<[^>]+>", "\n", html)
    text = text.replace("&nbsp;", " ").replace("&amp;", "&").replace("&#39;", "'").replace("&quot;", '"')
    return [line.strip() for line in [*text.split("\n"), *attrs] if line.strip()]


def english_on(html):
    found = []
    for line in visible_text(html):
        for allowed in ALLOWED:
            line = line.replace(allowed, " ")
        match = english_phrases().search(line)
        if match:
            found.append(f"msgid: {match.group(0)!r} in {line[:120]!r}")
            continue
        words = re.findall(r"[a-z]+", line.lower())
        if sum(w in ENGLISH_WORDS for w in words) >= 2:
            found.append(f"English: {line[:120]!r}")
    return found


@pytest.fixture
def world(app, factory):
    """A WAPU with orders, stamps, last month's invoice and a registration waiting."""
    from scm.auth.services import find_active_user
    from scm.billing import services as billing
    from scm.billing.usage import add_months, month_bounds, month_of
    from scm.core.formatting import today_wib

    wapu = factory.wapu(1101)
    factory.registration(1102)
    fin = factory.user("DIST_FIN")
    last = add_months(month_of(today_wib()), -1)
    start, _end = month_bounds(last)
    with app.app_context():
        with unit_of_work():
            issue_quota(wapu["id"], quantity=2000, key="po-p1", reference="PO/P/1")
        with unit_of_work():
            reserve_stamp(wapu["id"], None, data=StampInput("PG-1", "surat_perjanjian"))
        with unit_of_work():
            commit_stamp(wapu["id"], "PG-1")
        insert_stamps(wapu["id"], [start + timedelta(hours=h) for h in range(1, 40)])
        with unit_of_work():
            billing.run_billing(last, None, source="cli")
        with unit_of_work():
            billing.issue_drafts(last, find_active_user(fin))
        from scm.extensions import db
        from scm.registration.models import Wapu

        contract = db.session.get(Wapu, wapu["id"]).contracts[0].id
        from sqlalchemy import select

        from scm.billing.models import Invoice
        from scm.core.models import OutboxEmail

        invoice = db.session.execute(select(Invoice.id).where(Invoice.wapu_id == wapu["id"])).scalar()
        mail = db.session.execute(select(OutboxEmail.id).order_by(OutboxEmail.id.desc())).scalar()
    return {"wapu": wapu, "month": f"{last:%Y-%m}", "fin": fin, "now": utcnow(), "contract": contract, "wapu_id": wapu["id"],
            "invoice": invoice, "mail": mail}


PAGES = {
    "WAPU_STAFF": ["/", "/purchase-requests", "/purchase-requests/new", "/purchase-orders", "/quota", "/usage",
                   "/notifications", "/password", "/company"],
    "WAPU_SPV": ["/", "/purchase-requests", "/purchase-orders", "/quota", "/usage", "/api-tokens",
                 "/billing/invoices", "/company", "/wapus/{wapu[id]}/company-change", "/wapus/{wapu_id}/users",
                 "/wapus/{wapu_id}/users/new", "/stand-ins"],
    "WAPU_FIN": ["/", "/billing/invoices", "/usage", "/quota", "/billing/invoices/{invoice}"],
    "DIST_SPV": ["/", "/review/registrations", "/purchase-orders", "/wapus", "/usage", "/quota/accounts",
                 "/wapus/{wapu[id]}/status", "/stand-ins"],
    "DIST_FIN": ["/", "/billing", "/billing/months/{month}", "/billing/invoices", "/billing/aging", "/billing/bank",
                 "/billing/shortfall", "/billing/coretax", "/usage", "/quota/accounts", "/billing/invoices/{invoice}",
                 "/billing/dunning", "/admin/outbox/{mail}"],
    "DIST_ADMIN": ["/", "/admin/audit", "/admin/jobs", "/admin/users", "/admin/users/new", "/billing/settings",
                   "/billing/dunning", "/billing/dunning/steps/new", "/admin/outbox/{mail}",
                   "/usage/import", "/api-tokens", "/quota/accounts", "/wapus", "/wapus/{wapu[id]}",
                   "/wapus/{wapu[id]}/contracts/new", "/wapus/{wapu[id]}/coretax", "/contracts/{contract}/terminate",
                   "/wapus/{wapu_id}/users",
                   "/wapus/{wapu_id}/users/new", "/stand-ins"],
}


@pytest.mark.parametrize("role", sorted(PAGES))
def test_every_page_of_every_role_is_in_indonesian(app, world, login_as, role):
    client = login_as(role, wapu_id=world["wapu"]["id"] if role.startswith("WAPU") else None)
    problems = {}
    for url in PAGES[role]:
        response = client.get(url.format(**world), follow_redirects=True)
        assert response.status_code == 200, (url, response.status_code)
        found = english_on(response.get_data(as_text=True))
        if found:
            problems[url] = found
    assert not problems, problems


def test_the_public_pages_are_in_indonesian(app, client):
    for url in ("/", "/login", "/register", "/password/forgot"):
        assert not english_on(client.get(url).get_data(as_text=True)), url


def test_the_api_documentation_is_in_one_language_with_code_shown_as_code(app, client):
    """The API, its problems and its documentation speak English to developers, all of it."""
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert '<html lang="en">' in page and "Dokumentasi" not in page and "Otentikasi" not in page
    assert "`" not in re.sub(r"<pre\b.*?</pre>", "", page, flags=re.S)  # Markdown code spans are rendered
    assert "<code>wapu_not_active</code>" in page


def test_the_check_finds_english_when_the_user_reads_english(app, world, login_as):
    """The same check on the same pages in English must find plenty: it is not a check that cannot fail."""
    client = login_as("DIST_FIN")
    client.post("/language", {"lang": "en", "next": "/"})
    found = english_on(client.get("/billing/invoices").get_data(as_text=True))
    assert len(found) >= 3, found
