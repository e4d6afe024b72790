"""API token pages: a WAPU's SPV manages its own tokens; the distributor admin any WAPU's."""

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from scm.api import services, tokens_bp
from scm.api.forms import TokenForm
from scm.api.models import ApiToken
from scm.auth.decorators import roles_required
from scm.auth.forms import ConfirmForm
from scm.auth.models import Role
from scm.auth.scoping import get_scoped_or_404, scope_query
from scm.core.database import unit_of_work
from scm.core.errors import ServiceError
from scm.core.views import field_error, no_store
from scm.extensions import db
from scm.registration.models import Wapu


def _form():
    form = TokenForm()
    if current_user.role == Role.DIST_ADMIN:
        form.wapu_id.choices = [(w.id, f"{w.code} · {w.name}")
                                for w in db.session.execute(select(Wapu).order_by(Wapu.code)).scalars()]
    else:
        form.wapu_id.choices = [(current_user.wapu_id, current_user.wapu.code)]
        form.wapu_id.data = current_user.wapu_id
    return form


@tokens_bp.route("/api-tokens", methods=["GET", "POST"])
@roles_required(Role.WAPU_SPV, Role.DIST_ADMIN)
def tokens():
    """List the tokens and create one (its value is shown once)."""
    form = _form()
    if form.validate_on_submit():
        wapu_id = form.wapu_id.data if current_user.role == Role.DIST_ADMIN else current_user.wapu_id
        if wapu_id not in {c[0] for c in form.wapu_id.choices}:
            abort(404)
        try:
            with unit_of_work():
                token, plaintext = services.create_token(wapu_id, current_user, name=form.name.data)
                shown = {"name": token.name, "wapu": token.wapu.code}
        except ServiceError as error:
            field_error(form, error)
        else:
            return no_store(render_template("api/token_created.html", token=shown, plaintext=plaintext))
    stmt = scope_query(select(ApiToken), ApiToken, current_user).options(
        joinedload(ApiToken.wapu), joinedload(ApiToken.created_by)).order_by(ApiToken.revoked_at.is_not(None),
                                                                                ApiToken.id.desc())
    return render_template("api/tokens.html", form=form, tokens=db.session.execute(stmt).scalars().all(),
                           confirm=ConfirmForm())


@tokens_bp.route("/api-tokens/<int:token_id>/revoke", methods=["POST"])
@roles_required(Role.WAPU_SPV, Role.DIST_ADMIN)
def revoke(token_id):
    """Revoke a token: the systems using it get 401 from now on."""
    get_scoped_or_404(ApiToken, token_id, current_user)
    if ConfirmForm().validate_on_submit():
        with unit_of_work():
            services.revoke_token(db.session.get(ApiToken, token_id), current_user)
        flash(_("The token was revoked."), "success")
    return redirect(url_for("api_tokens.tokens"))
