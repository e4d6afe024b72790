"""Mail transports: SMTP for real delivery, the application log for development."""

import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app


def send_message(to_address: str, subject: str, body: str) -> None:
    """Deliver one message with the configured backend; raises on failure."""
    config = current_app.config
    message = EmailMessage()
    message["From"] = config["MAIL_SENDER"]
    message["To"] = to_address
    message["Subject"] = " ".join(subject.split())  # no line break ever reaches a header
    message["Message-ID"] = make_msgid(domain="scm-meterai.local")
    message.set_content(body)
    if config["MAIL_BACKEND"] == "log":
        # One line per mail; the body (links, one-time passwords) only at debug level.
        current_app.logger.info("mail to %s: %s", to_address, subject)
        current_app.logger.debug("mail body to %s:\n%s", to_address, body)
        return
    with smtplib.SMTP(
        config["MAIL_SERVER"], config["MAIL_PORT"], timeout=config["MAIL_TIMEOUT_SECONDS"]
    ) as smtp:
        if config["MAIL_USE_TLS"]:
            smtp.starttls()
        if config["MAIL_USERNAME"]:
            smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
        smtp.send_message(message)
