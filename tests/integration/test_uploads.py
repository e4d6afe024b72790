"""Files held between two requests: one helper for contracts and usage files, with an age limit."""

import os
import time

import pytest

from scm.core.uploads import HELD_MAX_AGE_SECONDS, Upload, hold_upload, release_held_upload, take_held_upload


@pytest.mark.parametrize("kind", ["contracts", "usage"])
def test_a_held_file_comes_back_until_released(app, kind):
    with app.app_context():
        token = hold_upload(Upload(b"%PDF-1.4 data %%EOF", "kontrak.pdf"), kind)
        held = take_held_upload(token, kind)
        assert (held.data, held.original_name) == (b"%PDF-1.4 data %%EOF", "kontrak.pdf")
        assert take_held_upload(token, kind).data == held.data  # taking keeps it by default
        release_held_upload(token, kind)
        assert take_held_upload(token, kind) is None


def test_kinds_do_not_see_each_other(app):
    with app.app_context():
        token = hold_upload(Upload(b"serial,stamped_at\n", "usage.csv"), "usage")
        assert take_held_upload(token, "contracts") is None
        assert take_held_upload(token, "usage").original_name == "usage.csv"


@pytest.mark.parametrize("kind", ["contracts", "usage"])
def test_a_file_held_longer_than_a_day_is_refused_and_purged(app, kind):
    with app.app_context():
        old = hold_upload(Upload(b"old", "lama.pdf"), kind)
        folder = os.path.join(app.config["UPLOAD_FOLDER"], "held", kind)
        stale = time.time() - HELD_MAX_AGE_SECONDS - 60
        for name in os.listdir(folder):
            os.utime(os.path.join(folder, name), (stale, stale))
        assert take_held_upload(old, kind) is None
        hold_upload(Upload(b"new", "baru.pdf"), kind)  # holding anything purges what is too old
        assert not any(name.startswith(old) for name in os.listdir(folder))


@pytest.mark.parametrize("token", ["", "../../etc/passwd", "0" * 31, "g" * 32, None, 12345])
def test_malformed_tokens_find_nothing(app, token):
    with app.app_context():
        assert take_held_upload(token, "usage") is None
        release_held_upload(token, "usage")  # and releasing them touches nothing
