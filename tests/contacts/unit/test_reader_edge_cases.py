"""Files a tester sent that used to lose records silently: an unterminated quote, short rows,
UTF-16 ("Unicode text") exports. No broker, no database."""
import codecs

import pytest

from services.common.errors import Invalid
from services.contacts import reader
from tests.conftest import read_fixture


def records(data, chunk=7):
    chunks = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]
    table = reader.open_table(chunks)
    return table, list(table.records())


def test_an_unterminated_quote_is_refused_naming_the_record_where_it_opened():
    data = b'Email,b\n"unterminated@example.org,1\nx@example.org,3\ny@example.org,4\n'
    with pytest.raises(Invalid) as err:
        records(data)
    assert err.value.message == "the CSV is malformed"
    assert err.value.errors["file"] == [
        "record 1 (line 2): a quoted cell is never closed (unterminated quote); it would run to"
        " the end of the file"]


def test_an_unterminated_quote_further_down_names_its_record_and_line():
    data = (b'Email,Notes\r\na@example.org,"two\r\nlines"\r\nb@example.org,ok\r\n'
            b'c@example.org,"never closed\r\nd@example.org,x\r\n')
    with pytest.raises(Invalid) as err:
        records(data, chunk=5)
    assert "record 3 (line 5)" in err.value.errors["file"][0]


def test_a_last_record_without_a_line_end_is_not_an_unterminated_quote():
    _, rows = records(b'Email,b\na@example.org,"1"')
    assert rows == [(1, {"Email": "a@example.org", "b": "1"})]


def test_a_one_cell_row_is_a_record_with_its_missing_cells_empty():
    _, rows = records(b"Email,b\na@example.org,1,extra,extra\nb@example.org\n")
    assert rows == [(1, {"Email": "a@example.org", "b": "1"}),
                    (2, {"Email": "b@example.org", "b": ""})]


@pytest.mark.parametrize("line", [
    '"Grand Totals (22 records)"', "Grand Totals (1 record)", '"Grand Totals (1,204 records)"',
    '"Confidential Information - Do Not Distribute"',
    '"Copyright (c) 2000-2026 salesforce.com, inc. All rights reserved."'])
def test_only_salesforce_report_footer_lines_and_empty_rows_are_not_records(line):
    data = f'Email,Name\r\na@example.org,Ann\r\n""\r\n,\r\n{line}\r\n'.encode()
    _, rows = records(data)
    assert rows == [(1, {"Email": "a@example.org", "Name": "Ann"})]


def test_the_salesforce_report_still_has_exactly_its_22_records():
    _, rows = records(read_fixture("contacts", "salesforce_report_emea_contacts.csv"), chunk=100)
    assert [n for n, _ in rows] == list(range(1, 23))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_files_with_a_byte_order_mark_are_decoded(encoding):
    text = "Email\tName\r\nzoe@example.org\tZoë Ångström\r\nwang@example.org\t芳 王\r\n"
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")
    data = bom + text.encode(encoding)
    assert reader.sniff_kind(data) == "csv"
    table, rows = records(data, chunk=3)
    assert (table.delimiter, table.columns) == ("\t", ["Email", "Name"])
    assert rows == [(1, {"Email": "zoe@example.org", "Name": "Zoë Ångström"}),
                    (2, {"Email": "wang@example.org", "Name": "芳 王"})]


def test_utf16_without_a_byte_order_mark_is_refused_with_an_accurate_message():
    with pytest.raises(Invalid) as err:
        reader.open_table(["Email,Name\r\na@example.org,A\r\n".encode("utf-16-le")])
    assert "UTF-16 text is read only with its byte-order mark" in err.value.errors["file"][0]


def test_a_utf16_file_holding_only_its_byte_order_mark_is_empty():
    with pytest.raises(Invalid) as err:
        reader.open_table([codecs.BOM_UTF16_LE + "\r\n".encode("utf-16-le")])
    assert err.value.errors == {"file": ["the file is empty"]}
