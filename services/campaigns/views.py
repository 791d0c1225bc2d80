"""How rows leave the service: JSON-safe plain data (ids and datetimes as strings)."""
import datetime
import decimal
import uuid

HIDDEN = {"org_id"}


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k not in HIDDEN}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral() else float(value)
    return value


def page(result):
    return {"items": [plain(r) for r in result["items"]], "next_cursor": result["next_cursor"]}
