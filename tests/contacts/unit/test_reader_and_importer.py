"""Reading files as records, checking and suggesting mappings (no broker, no database). The
import's merge rules run against PostgreSQL in tests/contacts/integration/test_bulk_import.py."""
import pytest

from services.common.errors import Invalid
from services.contacts import importer, reader
from tests.conftest import read_fixture


def records(data, chunk=7):
    chunks = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]
    table = reader.open_table(chunks)
    return table, list(table.records())


def test_semicolon_file_with_bare_lf_inside_quotes_and_crlf_records():
    table, rows = records(read_fixture("contacts", "tradeshow_leads_handmade.csv"))
    assert table.delimiter == ";"
    assert [n for n, _ in rows] == list(range(1, 19))
    assert rows[6][1]["Notes"] == "Met at booth.\nFollow up in January"


def test_bom_is_stripped_and_salesforce_footer_is_not_a_record():
    table, _ = records(read_fixture("contacts", "google-contacts.csv"), chunk=1000)
    assert table.columns[0] == "First Name"
    _, rows = records(read_fixture("contacts", "salesforce_report_emea_contacts.csv"), chunk=100)
    assert len(rows) == 22


def test_windows_1252_file_is_decoded():
    _, rows = records("email;name\r\nzoe@example.org;Zo\xeb\r\n".encode("cp1252"))
    assert rows == [(1, {"email": "zoe@example.org", "name": "Zoë"})]


@pytest.mark.parametrize("data, words", [(b"", "empty"), (b"\x00\x01binary\x00", "binary"),
                                         (b"\r\n\r\n", "empty")])
def test_bad_files_are_refused(data, words):
    with pytest.raises(Invalid) as err:
        reader.open_table([data])
    assert words in str(err.value.errors)


def test_mapping_must_name_an_email_or_phone_column_that_exists():
    with pytest.raises(Invalid) as err:
        importer.check_mapping({"name": "Name"}, ["Name", "E-mail"])
    assert "mapping" in err.value.errors
    with pytest.raises(Invalid) as err:
        importer.check_mapping({"email": "Email"}, ["Name", "E-mail"])
    assert "mapping.email" in err.value.errors


def test_suggested_mapping_for_a_hubspot_header():
    cols = ["Record ID", "First Name", "Last Name", "Email", "Phone Number", "Time Zone",
            "Unsubscribed from all email"]
    m = importer.suggest_mapping(cols)
    assert (m["email"], m["first_name"], m["phone"], m["timezone"]) == ("Email", "First Name", "Phone Number", "Time Zone")
    assert m["unsubscribe"] == {"email": "Unsubscribed from all email"}
