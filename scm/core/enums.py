"""Enums whose members carry a translatable label, written beside the value they label."""

import enum


class LabelledEnum(enum.StrEnum):
    """A string enum with a label per member: ``DRAFT = "draft", _l("draft")``.

    The value is what the database and the API hold; ``label`` is what a person reads, in
    the user's language (a lazy string). A member written without a label shows its value.
    """

    def __new__(cls, value, label=None):
        member = str.__new__(cls, value)
        member._value_ = value
        member._label = label
        return member

    @property
    def label(self):
        return self._label if self._label is not None else self.value

    @classmethod
    def choices(cls):
        """``(value, label)`` pairs for a select field, in declaration order."""
        return [(member.value, member.label) for member in cls]
