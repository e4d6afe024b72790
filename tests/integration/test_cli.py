"""Operator commands: create-admin, wapu list, demo load (idempotent)."""

from sqlalchemy import func, select

from scm.auth.models import Role, User
from scm.extensions import db
from scm.registration.models import Registration, RegistrationState, Wapu


def test_create_admin_with_given_password(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create-admin", "--email", "Boss@Distributor.example.com",
                                 "--name", "Bos", "--password", "Kopi-Tubruk-Pagi-77"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.execute(select(User).where(User.email == "boss@distributor.example.com")).scalar_one()
        assert user.role == Role.DIST_ADMIN and not user.must_change_password


def test_create_admin_generates_a_one_time_password_and_refuses_bad_input(app):
    """Commands speak the default language (Bahasa Indonesia)."""
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create-admin", "--email", "a@distributor.example.com", "--name", "A"],
                           input="\n\n")
    assert result.exit_code == 0 and "One-time password" in result.output
    with app.app_context():
        assert db.session.execute(select(User.must_change_password)).scalar_one() is True
    again = runner.invoke(args=["users", "create-admin", "--email", "a@distributor.example.com", "--name", "A",
                                "--password", "Kopi-Tubruk-Pagi-77"])
    assert again.exit_code != 0 and "Pengguna dengan email ini sudah ada" in again.output
    weak = runner.invoke(args=["users", "create-admin", "--email", "b@distributor.example.com", "--name", "B",
                               "--password", "password123"])
    assert weak.exit_code != 0 and "terlalu umum" in weak.output
    bad = runner.invoke(args=["users", "create-admin", "--email", "not-an-email", "--name", "B",
                              "--password", "Kopi-Tubruk-Pagi-77"])
    assert bad.exit_code != 0 and "alamat email yang valid" in bad.output


def test_demo_load_is_idempotent_and_wapu_list_prints_it(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    assert "admin@distributor.example.com" in first.output and "Meterai-Demo-2026" in first.output
    with app.app_context():
        counts = (db.session.execute(select(func.count()).select_from(User)).scalar(),
                  db.session.execute(select(func.count()).select_from(Registration)).scalar())
        states = db.session.execute(select(Registration.state)).scalars().all()
        assert states.count(RegistrationState.APPROVED) == 3
        assert states.count(RegistrationState.SUBMITTED) == 2
        assert states.count(RegistrationState.RETURNED) == 1
        assert db.session.execute(select(func.count()).select_from(Wapu)).scalar() == 3
    second = runner.invoke(args=["demo", "load"])
    assert second.exit_code == 0 and "already loaded" in second.output
    with app.app_context():
        assert counts == (db.session.execute(select(func.count()).select_from(User)).scalar(),
                          db.session.execute(select(func.count()).select_from(Registration)).scalar())
    listing = runner.invoke(args=["wapu", "list"])
    lines = listing.output.strip().splitlines()
    assert len(lines) == 3
    code, name, npwp, status = lines[0].split("\t")
    assert code == "W0001" and status == "active"
    assert len(npwp) == 20 and npwp[2] == "." and npwp[12] == "-"  # 99.999.999.9-999.999
