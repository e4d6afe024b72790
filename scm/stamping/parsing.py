"""Serials and timestamps as stamping systems send them: shared by the API and the usage import."""

import re
from datetime import datetime

SERIAL = re.compile(r"[A-Za-z0-9_-]{1,64}")  # use fullmatch: "$" would accept a final newline


def parse_timestamp(value):
    """An ISO 8601 / RFC 3339 date-time with an offset (``Z`` or ``+07:00``), or None."""
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}[Tt]", value):
        return None
    try:
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
