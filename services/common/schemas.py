"""Loading marshmallow schemas the same way everywhere: bad input becomes Invalid(field errors)."""
from marshmallow import ValidationError

from services.common.errors import Invalid


def load(schema, data, partial=False):
    try:
        return schema.load(data if data is not None else {}, partial=partial)
    except ValidationError as err:
        raise Invalid("invalid input", errors=err.messages)
