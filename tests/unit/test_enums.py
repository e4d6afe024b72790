"""The labelled-enum base: values for the database and the API, labels for people."""

from scm.auth.models import Role
from scm.billing.models import LineKind
from scm.core.enums import LabelledEnum
from scm.procurement.models import PRState


class Colour(LabelledEnum):
    RED = "red", "merah"
    PLAIN = "plain"


def test_members_are_their_value_and_carry_a_label():
    assert Colour("red") is Colour.RED and Colour.RED == "red" and str(Colour.RED) == "red"
    assert Colour.RED.label == "merah"
    assert Colour.PLAIN.label == "plain"  # no label given: the value shows
    assert Colour.choices() == [("red", "merah"), ("plain", "plain")]


def test_the_application_enums_use_it():
    assert str(PRState.SUBMITTED.label) == "waiting for SPV approval"
    assert str(Role("DIST_FIN").label) == "Distributor finance"
    assert LineKind.USAGE.label == "usage"
    assert [value for value, _ in PRState.choices()][:2] == ["draft", "submitted"]
