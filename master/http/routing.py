"""``bounded_klein()``: a klein app whose ``<int:...>`` path parts are bounded, and
``parse_url_int`` for integers in query strings: an id, offset or count past ``MAX_URL_INT``
(23 digits, say) would overflow the database's 64-bit integers and answer 500; here it is
no match (404) or a bad parameter (400)."""

from klein import Klein
from werkzeug.routing import IntegerConverter, ValidationError

from buildfarm.master.http.limits import MAX_URL_INT

MAX_URL_INT_DIGITS = len(str(MAX_URL_INT))


class BoundedIntConverter(IntegerConverter):
    """``<int:...>`` from 0 to ``MAX_URL_INT``; anything larger does not match (404)."""

    def __init__(self, url_map, fixed_digits=0, min=None, max=MAX_URL_INT, signed=False):  # noqa: A002
        super().__init__(url_map, fixed_digits, min, max, signed)

    def to_python(self, value: str):
        if len(value) > MAX_URL_INT_DIGITS or not value.isascii():
            raise ValidationError()
        return super().to_python(value)


def bounded_klein() -> Klein:
    """A ``Klein`` app whose ``int`` converter is ``BoundedIntConverter`` (call it before
    any route is added: routes bind their converters when they are added)."""
    app = Klein()
    app.url_map.converters["int"] = BoundedIntConverter
    return app


def parse_url_int(text: str | None, minimum: int = 0, maximum: int = MAX_URL_INT) -> int | None:
    """``text`` as an integer from ``minimum`` to ``maximum``; None when it is not one
    (ASCII digits only, no sign, at most as many digits as ``MAX_URL_INT``)."""
    if text is None:
        return None
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit() or len(text) > MAX_URL_INT_DIGITS:
        return None
    value = int(text)
    return value if minimum <= value <= maximum else None
