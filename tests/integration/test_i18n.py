"""Bahasa Indonesia by default, English on request; Rupiah and WIB formatting."""

from datetime import date, datetime, timezone

from scm.core.formatting import format_day, format_number, format_rupiah, format_wib


def test_indonesian_by_default_and_english_after_switch(client):
    page = client.get("/").get_data(as_text=True)
    assert 'lang="id"' in page and "Daftar sebagai Pemungut" in page and "Masuk" in page
    response = client.post("/language", {"lang": "en", "next": "/register"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/register")
    page = client.get("/register").get_data(as_text=True)
    assert 'lang="en"' in page and "Register as a Pemungut" in page and "Daftar sebagai Pemungut" not in page
    client.post("/language", {"lang": "id"})
    assert "Daftar sebagai Pemungut" in client.get("/register").get_data(as_text=True)


def test_unknown_language_and_foreign_redirects_are_ignored(client):
    response = client.post("/language", {"lang": "fr", "next": "//evil.example.com/"})
    assert response.headers["Location"] == "/"
    assert 'lang="id"' in client.get("/").get_data(as_text=True)


def test_form_errors_are_in_the_users_language(client):
    page = client.post("/register", {"npwp": "123"}).get_data(as_text=True)
    assert "NPWP terdiri dari 15 atau 16 digit" in page or "15 atau 16 digit" in page
    client.post("/language", {"lang": "en"})
    page = client.post("/register", {"npwp": "123"}).get_data(as_text=True)
    assert "An NPWP has 15 or 16 digits." in page


def test_rupiah_number_and_wib_formatting(app):
    with app.test_request_context():
        assert format_rupiah(10000) == "Rp10.000"
        assert format_rupiah(1234567890) == "Rp1.234.567.890"
        assert format_rupiah(-5000) == "-Rp5.000"
        assert format_number(1000) == "1.000"
        # 2026-11-30 16:30 UTC is 23:30 WIB, still 30 November in Jakarta.
        assert format_wib(datetime(2026, 11, 30, 16, 30, tzinfo=timezone.utc)) == "30 Nov 2026 23.30 WIB"
        assert format_wib(datetime(2026, 11, 30, 17, 30, tzinfo=timezone.utc)) == "1 Des 2026 00.30 WIB"
        assert format_day(date(2026, 8, 17)) == "17 Agustus 2026"
    with app.test_request_context():
        from flask import session

        session["lang"] = "en"
        assert format_rupiah(10000) == "Rp10,000"
        assert format_day(date(2026, 8, 17)) == "17 August 2026"
