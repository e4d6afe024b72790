"""Password rules and one-time passwords."""

import pytest

from scm import create_app
from scm.auth.services import find_active_user, generate_one_time_password, hash_password, password_problems
from scm.extensions import db


def test_good_password_has_no_problem():
    assert password_problems("Kopi-Tubruk-Pagi-77", "budi@example.com") == []


@pytest.mark.parametrize("password", ["short1!", "123456789"])
def test_too_short(password):
    assert any("at least 10" in str(p) for p in password_problems(password))


@pytest.mark.parametrize("password", ["password123", "qwertyuiop", "1234567890", "aaaaaaaaaaaa"])
def test_common_passwords_refused(password):
    assert any("common" in str(p) for p in password_problems(password))


def test_email_as_password_refused():
    problems = password_problems("budi.santoso@example.com", "Budi.Santoso@example.com")
    assert any("email" in str(p) for p in problems)
    assert any("email" in str(p) for p in password_problems("budi.santoso", "budi.santoso@example.com"))


def test_one_time_passwords_are_random_and_acceptable():
    passwords = {generate_one_time_password() for _ in range(200)}
    assert len(passwords) == 200
    for password in list(passwords)[:20]:
        assert len(password) == 14 and password.count("-") == 2
        assert password_problems(password, "x@example.com") == []


def test_one_time_passwords_have_no_look_alike_characters():
    """Read off paper, i/l/1/I and O/o/0 are mistaken for one another: none of them is used."""
    look_alikes = set("il1IOo0")
    used = set("".join(generate_one_time_password() for _ in range(5000))) - {"-"}
    assert not used & look_alikes, sorted(used & look_alikes)
    assert len(used) >= 18  # 12 * log2(18) > 50 bits: still hard to guess


# ------------------------------------------------------------------ hash method per configuration


def _hash_in(config_name, tmp_path, password):
    """``hash_password(password)`` in an app built with the ``config_name`` settings."""
    app = create_app(config_name, SECRET_KEY="k" * 64,
                     SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / f'{config_name}.sqlite3'}",
                     UPLOAD_FOLDER=str(tmp_path / f"uploads-{config_name}"))
    with app.app_context():
        return hash_password(password)


@pytest.mark.parametrize("config_name", ["production", "development"])
def test_production_and_development_hash_passwords_with_scrypt(config_name, tmp_path):
    assert _hash_in(config_name, tmp_path, "x").startswith("scrypt:")


def test_the_test_suite_alone_uses_a_cheap_hash(app):
    with app.app_context():
        assert hash_password("x").startswith("pbkdf2:sha256:1$")


def test_a_scrypt_hash_made_in_production_still_logs_in(app, factory, client, tmp_path):
    password = "Kopi-Tubruk-Pagi-77"
    scrypt_hash = _hash_in("production", tmp_path, password)
    email = factory.user("DIST_ADMIN")
    with app.app_context():
        find_active_user(email).password_hash = scrypt_hash
        db.session.commit()

    refused = client.login(email, "Kopi-Tubruk-Sore-78")
    assert refused.status_code == 200 and "/login" not in refused.headers.get("Location", "")
    response = client.login(email, password)
    assert response.status_code == 302
    assert not response.headers["Location"].endswith("/login")
    assert client.get("/").status_code == 200
