"""Password rules and one-time passwords."""

import pytest

from scm.auth.services import generate_one_time_password, password_problems


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
