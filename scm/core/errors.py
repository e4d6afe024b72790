"""Errors that services raise for the user: a clear, translated message and a machine code."""


class ServiceError(Exception):
    """A refusal the user can act on. Nothing was changed when it is raised inside a unit of work."""

    code = "invalid"

    def __init__(self, message, *, field=None, code=None):
        super().__init__(str(message))
        self.message = message
        self.field = field
        if code:
            self.code = code


class TransitionError(ServiceError):
    code = "transition_not_allowed"


class ValidationErrors(ServiceError):
    """Several field errors at once: ``errors`` maps field name to message."""

    code = "validation_error"

    def __init__(self, errors):
        super().__init__(next(iter(errors.values())), field=next(iter(errors)))
        self.errors = errors
