"""``flask billing ...``."""

from flask.cli import AppGroup

billing_cli = AppGroup("billing", help="Monthly billing and its exports.")
