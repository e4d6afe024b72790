"""Registration end to end over HTTP: submit, duplicates, upload refusals, held uploads."""

import io
import re

from sqlalchemy import func, select

from scm.core.models import FileBlob, HeldUpload, StoredFile
from scm.extensions import db
from scm.registration.models import Registration, RegistrationState
from tests.fixtures.factories import pdf_bytes, registration_form, valid_npwp


def submit(client, data, file_bytes=None, filename="kontrak.pdf"):
    data = dict(data)
    if file_bytes is not None:
        data["contract_file"] = (io.BytesIO(file_bytes), filename)
    return client.post("/register", data, content_type="multipart/form-data")


def uploads(app):
    """The stored files, by their random names (their bytes are in the database)."""
    with app.app_context():
        return sorted(db.session.execute(select(StoredFile.stored_name)).scalars())


def kept(app):
    """How many uploads are held, and how many file contents the database keeps."""
    with app.app_context():
        return (db.session.scalar(select(func.count()).select_from(HeldUpload)),
                db.session.scalar(select(func.count()).select_from(FileBlob)))


def count_registrations(app):
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(Registration)).scalar()


def test_public_page_needs_no_login_and_is_indonesian(client):
    page = client.get("/register").get_data(as_text=True)
    assert "Daftar sebagai Pemungut" in page
    assert 'name="npwp"' in page and 'name="contract_file"' in page


def test_register_end_to_end(app, client, mailbox, factory):
    reviewer = factory.user("DIST_SPV")
    data = registration_form(101, npwp="01.300.066.6-091.000")
    response = submit(client, data, pdf_bytes())
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    reference = re.search(r"REG-\d{4}-\d{6}", page).group(0)

    with app.app_context():
        reg = db.session.execute(select(Registration)).scalar_one()
        assert reg.reference == reference
        assert reg.state == RegistrationState.SUBMITTED
        assert reg.npwp == "013000666091000" and reg.npwp_formatted == "01.300.066.6-091.000"
        assert {c.kind.value: c.phone for c in reg.contacts}["SPV"].startswith("+62812")
        assert reg.contract_file.sha256 and len(reg.contract_file.sha256) == 64
        stored = reg.contract_file.stored_name
        assert "kontrak" not in stored  # a random name, not the user's
    assert uploads(app) == [stored] and kept(app) == (0, 1)
    # Mail went to the three contacts and to the reviewer.
    for kind in ("spv", "fin", "staff"):
        assert mailbox.to(data[f"{kind}_email"]), kind
    assert reference in mailbox.to(reviewer)[0]["Subject"]


def test_reference_numbers_are_sequential(app, client):
    refs = []
    for seed in (111, 112):
        response = submit(client, registration_form(seed), pdf_bytes())
        assert response.status_code == 302
        refs.append(re.search(r"REG-\d{4}-(\d{6})", client.get("/register/submitted").get_data(as_text=True)).group(1))
    assert int(refs[1]) == int(refs[0]) + 1


def test_duplicate_npwp_gets_a_clear_message_not_500(app, client):
    assert submit(client, registration_form(121), pdf_bytes()).status_code == 302
    again = registration_form(122, npwp=registration_form(121)["npwp"])
    response = submit(client, again, pdf_bytes("kedua"))  # refused in the unit of work that stored the PDF
    assert response.status_code == 200
    assert "NPWP ini sudah terdaftar" in response.get_data(as_text=True) or \
        "already registered" in response.get_data(as_text=True)
    assert count_registrations(app) == 1
    assert len(uploads(app)) == 1
    assert kept(app) == (1, 2)  # the refused PDF is only held, for the next try of the form


def test_bad_npwp_check_digit_is_named_beside_the_field(app, client):
    response = submit(client, registration_form(131, npwp="01.300.066.7-091.000"), pdf_bytes())
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'data-field-error="npwp"' in page
    assert count_registrations(app) == 0


def test_form_keeps_what_the_user_typed_and_shows_each_error(app, client):
    data = registration_form(141, nib="123", spv_phone="12345", latitude="-20")
    response = submit(client, data, pdf_bytes())
    page = response.get_data(as_text=True)
    for field in ("nib", "spv_phone", "latitude"):
        assert f'data-field-error="{field}"' in page, field
    assert data["name"] in page and data["fin_email"] in page
    assert count_registrations(app) == 0


def test_valid_upload_is_held_when_other_fields_fail(app, client):
    data = registration_form(151, nib="123")
    page = submit(client, data, pdf_bytes()).get_data(as_text=True)
    token = re.search(r'name="held_upload" type="hidden" value="([0-9a-f]{32})"', page).group(1)
    assert 'data-testid="held-upload"' in page
    assert uploads(app) == [] and kept(app) == (1, 1)  # held, not stored
    fixed = registration_form(151, held_upload=token)
    response = submit(client, fixed)  # no file this time
    assert response.status_code == 302
    assert len(uploads(app)) == 1
    assert kept(app) == (0, 1)  # released once stored; the same content is kept once


def test_emails_must_be_distinct(app, client, factory):
    data = registration_form(161, fin_email=registration_form(161)["spv_email"])
    page = submit(client, data, pdf_bytes()).get_data(as_text=True)
    assert 'data-field-error="fin_email"' in page
    assert count_registrations(app) == 0


def test_the_public_form_does_not_tell_whether_an_email_has_an_account(app, client, factory, login_as):
    """Account enumeration (issue #15): an existing user's email is accepted like any other; the
    reviewer is told, and approval refuses it."""
    existing = factory.user("DIST_FIN")
    fresh = submit(client, registration_form(162), pdf_bytes())
    taken = submit(client, registration_form(163, staff_email=existing), pdf_bytes())
    assert taken.status_code == fresh.status_code == 302
    assert taken.headers["Location"].split("?")[0] == fresh.headers["Location"].split("?")[0]
    assert count_registrations(app) == 2
    reviewer = login_as("DIST_SPV")
    with app.app_context():
        from sqlalchemy import select

        from scm.extensions import db
        from scm.registration.models import Registration

        reg_id = db.session.execute(select(Registration.id).where(Registration.name == "PT Uji Coba 163")).scalar_one()
    page = reviewer.get(f"/registrations/{reg_id}").get_data(as_text=True)
    assert 'data-testid="emails-taken"' in page and existing in page
    refused = reviewer.post(f"/registrations/{reg_id}/approve", {"comment": ""}).get_data(as_text=True)
    assert existing in refused


def test_contract_end_must_follow_start(app, client):
    page = submit(client, registration_form(171, contract_end="2025-12-31"), pdf_bytes()).get_data(as_text=True)
    assert 'data-field-error="contract_end"' in page
    assert count_registrations(app) == 0


def test_text_file_renamed_pdf_is_refused_and_nothing_stored(app, client):
    response = submit(client, registration_form(181), b"just some text, not a PDF\n" * 20, "kontrak.pdf")
    page = response.get_data(as_text=True)
    assert 'data-field-error="contract_file"' in page
    assert count_registrations(app) == 0 and uploads(app) == [] and kept(app) == (0, 0)


def test_empty_file_is_refused_and_nothing_stored(app, client):
    page = submit(client, registration_form(182), b"", "kontrak.pdf").get_data(as_text=True)
    assert 'data-field-error="contract_file"' in page
    assert count_registrations(app) == 0 and uploads(app) == [] and kept(app) == (0, 0)


def test_oversized_file_is_refused_and_nothing_stored(app, client):
    big = pdf_bytes()[:-6] + b" " * (10 * 1024 * 1024) + b"%%EOF\n"
    page = submit(client, registration_form(183), big).get_data(as_text=True)
    assert 'data-field-error="contract_file"' in page and "10 MB" in page
    assert count_registrations(app) == 0 and uploads(app) == [] and kept(app) == (0, 0)


def test_huge_request_gets_a_413_page(app, client):
    huge = b"%PDF-1.4\n" + b"x" * (22 * 1024 * 1024)
    response = submit(client, registration_form(184), huge)
    assert response.status_code == 413
    assert "10 MB" in response.get_data(as_text=True)
    assert count_registrations(app) == 0 and uploads(app) == [] and kept(app) == (0, 0)


def test_missing_file_is_required(app, client):
    page = submit(client, registration_form(185)).get_data(as_text=True)
    assert 'data-field-error="contract_file"' in page
    assert count_registrations(app) == 0


def test_sixteen_digit_npwp_registers(app, client):
    response = submit(client, registration_form(191, npwp=valid_npwp(191, digits=16)), pdf_bytes())
    assert response.status_code == 302
    with app.app_context():
        assert len(db.session.execute(select(Registration.npwp)).scalar_one()) == 16


def test_distributor_user_can_enter_a_registration_on_behalf(app, login_as):
    spv = login_as("DIST_SPV")
    assert "atas nama" in spv.get("/register").get_data(as_text=True) or \
        "on behalf" in spv.get("/register").get_data(as_text=True)
    response = submit(spv, registration_form(195), pdf_bytes())
    assert response.status_code == 302
    with app.app_context():
        reg = db.session.execute(select(Registration)).scalar_one()
        assert reg.entered_by.email == spv.email


def test_a_new_file_replaces_the_held_one(app, client):
    import hashlib

    first = submit(client, registration_form(152, nib="1"), pdf_bytes("lama"), "lama.pdf").get_data(as_text=True)
    token = re.search(r'name="held_upload" type="hidden" value="([0-9a-f]{32})"', first).group(1)
    new_pdf = pdf_bytes("baru")
    second = submit(client, registration_form(152, nib="2", held_upload=token), new_pdf, "baru.pdf").get_data(as_text=True)
    assert "baru.pdf" in second and "lama.pdf" not in second
    token = re.search(r'name="held_upload" type="hidden" value="([0-9a-f]{32})"', second).group(1)
    assert submit(client, registration_form(152, held_upload=token)).status_code == 302
    with app.app_context():
        reg = db.session.execute(select(Registration)).scalar_one()
        assert reg.contract_file.sha256 == hashlib.sha256(new_pdf).hexdigest()
        assert reg.contract_file.original_name == "baru.pdf"


def error_summary(page):
    """The error summary at the top of the form (the text between its opening and closing tags)."""
    match = re.search(r'<div class="alert alert-danger" role="alert" tabindex="-1"[^>]*data-testid="error-summary">'
                      r"(.*?)</div>", page, re.S)
    assert match, "no error summary on the page"
    assert page.index('data-testid="error-summary"') < page.index('name="npwp"')  # above the form
    return match.group(1)


def test_error_summary_at_the_top_links_to_each_bad_field(app, client):
    page = submit(client, registration_form(197, npwp="01.300.066.7-091.000")).get_data(as_text=True)
    summary = error_summary(page)
    links = dict(re.findall(r'<a class="alert-link" href="#([a-z_]+)"[^>]*>([^<]+)</a>', summary))
    assert set(links) == {"npwp", "contract_file"}, links
    assert 'id="npwp"' in page and 'id="contract_file"' in page  # the links lead somewhere
    assert links["npwp"].startswith("NPWP: ") and len(links["npwp"]) > len("NPWP: ")
    assert links["contract_file"].startswith("Kontrak") and "PDF" in links["contract_file"]
    assert count_registrations(app) == 0


def test_error_summary_names_the_contact_of_a_contact_field(client):
    page = submit(client, registration_form(198, fin_email="bukan-email"), pdf_bytes()).get_data(as_text=True)
    assert re.search(r'href="#fin_email"[^>]*>FIN – Email: ', error_summary(page))


def test_error_summary_shows_form_level_errors(app, client, monkeypatch):
    from scm.core.errors import ServiceError
    from scm.registration import services

    def refuse(*args, **kwargs):
        raise ServiceError("The service is closed for maintenance.")

    monkeypatch.setattr(services, "submit_registration", refuse)
    page = submit(client, registration_form(199), pdf_bytes()).get_data(as_text=True)
    summary = error_summary(page)
    assert '<li data-testid="form-error">The service is closed for maintenance.</li>' in summary
    assert count_registrations(app) == 0


def test_no_error_summary_on_a_fresh_form(client):
    assert 'data-testid="error-summary"' not in client.get("/register").get_data(as_text=True)


def test_approving_asks_for_confirmation_without_inline_javascript(app, factory, login_as):
    reg = factory.registration(196)
    page = login_as("DIST_SPV").get(f"/registrations/{reg['id']}").get_data(as_text=True)
    approve = re.search(r'<button[^>]*formaction="[^"]*/approve"[^>]*>', page).group(0)
    assert re.search(r'data-confirm="[^"]{20,}"', approve), approve
    assert "onclick" not in page and "onsubmit" not in page
    script = re.search(r'<script src="([^"]*/confirm\.js)" defer></script>', page).group(1)
    served = app.test_client().get(script)
    assert served.status_code == 200 and b"window.confirm" in served.data
