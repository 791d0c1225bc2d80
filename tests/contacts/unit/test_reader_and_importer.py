"""Reading files as records and turning records into contacts, with an in-memory store standing
in for PostgreSQL (the importer's rules, no broker, no database)."""
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


class MemoryStore:
    """The store interface the importer uses, over dicts."""

    def __init__(self):
        self.contacts, self.tags, self.unsubs, self.outcomes, self.next = {}, {}, set(), [], 0

    def match_contacts(self, emails, phones):
        out = {}
        for c in self.contacts.values():
            if c["email"] in emails:
                out[("e", c["email"])] = self._row(c)
            if c["phone"] in phones:
                out.setdefault(("p", c["phone"]), self._row(c))
        return out

    def _row(self, c):
        return dict(c, tag_titles={t.lower() for t in self.tags.get(c["id"], [])},
                    unsubscribed={ch: (ch, c["email"] if ch == "email" else c["phone"]) in self.unsubs
                                  for ch in ("email", "sms", "phone")})

    def contacts_by_id(self, ids):
        return {i: self._row(self.contacts[i]) for i in ids}

    def insert_contacts(self, cands):
        ids = []
        for c in cands:
            self.next += 1
            self.contacts[self.next] = dict({f: c.values.get(f) for f in importer.SCALARS},
                                            id=self.next, custom=dict(c.custom))
            ids.append(self.next)
        return ids

    def update_contacts(self, updates):
        for cid, changed in updates:
            self.contacts[cid].update(changed)

    def link_tags(self, links):
        for cid, titles in links:
            self.tags.setdefault(cid, []).extend(titles)

    def unsubscribe_many(self, pairs, source):
        self.unsubs.update(pairs)

    def record_outcomes(self, outcomes):
        self.outcomes += outcomes


def run(data, mapping, store=None, batch=None, monkeypatch=None):
    store = store or MemoryStore()
    table = reader.open_table([data])
    importer.check_mapping(mapping, table.columns)
    counts = importer.Run(store, dict(mapping, custom="rest"), {"default_country": "US"}).feed(table.records())
    return store, counts


CSV = (b"email,name,phone,sms stop,plan\n"
       b"ana@example.com,Ana,(202) 555-0143,,gold\n"
       b"ANA@example.com ,,,yes,\n"
       b",Laura,+1 202 555 0106,,\n"
       b",Nobody,555-0144,,\n"
       b",Laura again,(202) 555-0106,,silver\n")
MAP = {"email": "email", "name": "name", "phone": "phone", "unsubscribe": {"sms": "sms stop"}}


def test_records_of_one_person_merge_fill_only_and_unusable_ones_are_rejected():
    store, counts = run(CSV, MAP)
    assert (counts["created"], counts["merged"], counts["rejected"]) == (2, 2, 1)
    ana = next(c for c in store.contacts.values() if c["email"] == "ana@example.com")
    assert (ana["name"], ana["phone"], ana["custom"]) == ("Ana", "+12025550143", {"plan": "gold"})
    assert ("sms", "+12025550143") in store.unsubs
    laura = next(c for c in store.contacts.values() if c["phone"] == "+12025550106")
    assert laura["name"] == "Laura" and laura["custom"] == {"plan": "silver"}
    rejected = [o for o in store.outcomes if o.outcome == "rejected"]
    assert [(o.record, o.reason) for o in rejected] == [(4, "no e-mail and invalid phone '555-0144' for region US: dropped")]


def test_reimport_updates_nothing_and_a_changed_value_updates():
    store, _ = run(CSV, MAP)
    _, counts = run(CSV, MAP, store)
    assert (counts["created"], counts["updated"], counts["unchanged"]) == (0, 0, 2)
    _, counts = run(b"email,name\nana@example.com,Ana Souza\n", {"email": "email", "name": "name"}, store)
    assert counts["updated"] == 1
    assert next(c for c in store.contacts.values() if c["email"] == "ana@example.com")["name"] == "Ana Souza"


def test_duplicates_across_batches_still_merge(monkeypatch):
    monkeypatch.setattr(importer, "BATCH", 2)
    store, counts = run(CSV, MAP)
    assert (counts["created"], counts["merged"], counts["rejected"]) == (2, 2, 1)
    assert len(store.contacts) == 2
