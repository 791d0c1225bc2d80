"""Each real-format export in tests/fixtures/contacts imports with exactly the outcome that
shared/cases/README.md (section contacts/) states, into an empty organization, over the real
broker and database (the file travels in base64 chunks, as from the gateway)."""
import csv
import io

import pytest

from tests.conftest import read_fixture
from tests.contacts.upload import import_file, new_org

MAPPINGS = {
    "mailchimp": {"email": "Email Address", "first_name": "First Name", "last_name": "Last Name",
                  "phone": "Phone Number", "country": "CC", "timezone": "TIMEZONE", "tags": "TAGS"},
    "hubspot": {"email": "Email", "first_name": "First Name", "last_name": "Last Name",
                "phone": "Phone Number", "timezone": "Time Zone",
                "unsubscribe": {"email": "Unsubscribed from all email"}},
    "google": {"email": "E-mail 1 - Value", "phone": "Phone 1 - Value", "first_name": "First Name",
               "last_name": "Last Name", "timezone": "Custom Field 1 - Value", "tags": "Labels"},
    "salesforce": {"email": "Email", "first_name": "First Name", "last_name": "Last Name",
                   "phone": "Mobile", "country": "Mailing Country", "timezone": "Preferred Time Zone",
                   "unsubscribe": {"email": "Email Opt Out", "phone": "Do Not Call"}},
    "handmade": {"email": "E-mail", "phone": "Mobile", "name": "Name", "timezone": "Timezone",
                 "unsubscribe": {"sms": "SMS opt-out"}},
}
FILES = {
    "mailchimp": "mailchimp_subscribed_members_export_7c2e41a0b9.csv",
    "hubspot": "hubspot-crm-exports-all-contacts-2026-11-30.csv",
    "google": "google-contacts.csv",
    "salesforce": "salesforce_report_emea_contacts.csv",
    "handmade": "tradeshow_leads_handmade.csv",
}


class Imported:
    """One file imported into a fresh organization, with each record's contact at hand."""

    def __init__(self, rpc, name, ctx=None):
        self.rpc = rpc
        self.ctx = ctx or new_org()
        self.result = import_file(rpc, self.ctx, read_fixture("contacts", FILES[name]),
                                  MAPPINGS[name], filename=FILES[name])
        text = rpc.contacts.import_result_csv(self.ctx, self.result["id"])
        self.rows = {int(r["record"]): r for r in csv.DictReader(io.StringIO(text))}
        self.contacts = {}
        after = None
        while True:
            page = rpc.contacts.list_contacts(self.ctx, {"limit": 1000, "after": after})
            for c in page["contacts"]:
                self.contacts[c["id"]] = c
            after = page["next_cursor"]
            if not after:
                break

    def record(self, number):
        return self.contacts[self.rows[number]["contact_id"]]

    def records_where(self, predicate):
        """Record numbers (first records only) whose contact satisfies predicate."""
        return sorted(n for n, r in self.rows.items()
                      if r["outcome"] == "created" and predicate(self.contacts[r["contact_id"]]))

    def rejected(self):
        return {r["record"]: r["reason"] for r in self.result["rejected"]}

    def warnings(self, field):
        return sorted(w["record"] for w in self.result["warnings"] if w["field"] == field)

    def history(self, contact, channel):
        ident = contact["email"] if channel == "email" else contact["phone"]
        return self.rpc.contacts.unsubscribe_history(self.ctx, channel, ident)


@pytest.fixture(scope="module")
def rpc(stack):
    with stack.rpc() as proxy:
        yield proxy


def test_mailchimp_export_imports_all_30_members_with_phones_zones_and_split_tags(rpc):
    imp = Imported(rpc, "mailchimp")
    counts = imp.result["counts"]
    assert (counts["created"], counts["rejected"], counts["merged"]) == (30, 0, 0)
    assert len(imp.contacts) == 30
    assert sum(1 for c in imp.contacts.values() if c["phone"]) == 24
    assert imp.records_where(lambda c: c["timezone"] is None) == [8, 10, 18, 27]
    r1 = imp.record(1)
    assert (r1["email"], r1["phone"], r1["timezone"]) == ("ana.souza@example.com", "+12025550143",
                                                         "America/New_York")
    assert sorted(r1["tags"]) == ["Q1 pilot", "webinar-2026"]
    assert imp.record(3)["phone"] == "+33199001234"
    r5 = imp.record(5)
    assert (r5["first_name"], r5["last_name"]) == ("芳", "王")
    assert (imp.record(6)["phone"], imp.record(6)["phone_extension"]) == ("+12025550132", "7")
    assert imp.record(7)["phone"] == "+447700900456"
    assert imp.record(10)["phone"] == "+12025550171"
    assert imp.record(15)["phone"] == "+33199004567"
    assert (imp.record(19)["phone"], imp.record(19)["phone_extension"]) == ("+12025550115", "220")
    assert imp.record(23)["phone"] is None
    assert imp.warnings("phone") == [23]
    assert imp.record(27)["phone"] == "+12025550197"
    assert not any(any(c["unsubscribed"].values()) for c in imp.contacts.values())
    # Unmapped columns are kept as custom data.
    assert r1["custom"]["Company"] == "Brightline Logistics"
    tags = {t["title"]: t for t in rpc.contacts.list_tags(imp.ctx)}
    assert tags["Q1 pilot"]["usage"] >= 2 and "webinar-2026" in tags


def test_mailchimp_reimport_creates_no_duplicates(rpc):
    first = Imported(rpc, "mailchimp")
    again = Imported(rpc, "mailchimp", ctx=first.ctx)
    counts = again.result["counts"]
    assert (counts["created"], counts["unchanged"], counts["updated"]) == (0, 30, 0)
    assert len(again.contacts) == 30


def test_hubspot_export_rejects_two_records_and_records_email_unsubscribes_from_import(rpc):
    imp = Imported(rpc, "hubspot")
    counts = imp.result["counts"]
    assert (counts["created"], counts["rejected"]) == (23, 2)
    rejected = imp.rejected()
    assert sorted(rejected) == [6, 8]
    assert "jules.martin@example..com" in rejected[6]
    assert rejected[8] == "no e-mail and no phone"
    assert imp.records_where(lambda c: c["unsubscribed"]["email"]) == [9, 11, 22]
    for n in (9, 11, 22):
        assert [h["source"] for h in imp.history(imp.record(n), "email")] == ["import"]
    assert imp.record(19)["phone"] is None
    assert 19 in imp.warnings("phone")
    assert sum(1 for c in imp.contacts.values() if c["phone"]) == 16
    assert imp.records_where(lambda c: c["timezone"] is None) == [10, 17]
    r4 = imp.record(4)
    assert (r4["phone"], r4["phone_extension"], r4["timezone"]) == ("+12025550177", "204",
                                                                    "America/Chicago")
    r7 = imp.record(7)
    assert (r7["email"], r7["phone"]) == (None, "+12025550152")
    assert r7["reachable"] == {"email": False, "sms": True, "phone": True}
    assert imp.record(2)["timezone"] == "Europe/London"
    assert imp.record(2)["custom"]["Annual budget (USD)"] == "12,500"
    assert "\n" in imp.record(13)["custom"]["Message"]
    assert '"' in imp.record(16)["custom"]["Message"]


def test_google_contacts_export_merges_duplicates_and_rejects_unusable_cards(rpc):
    imp = Imported(rpc, "google")
    counts = imp.result["counts"]
    assert (counts["created"], counts["merged"], counts["rejected"]) == (16, 2, 2)
    assert len(imp.contacts) == 16
    assert {m["record"]: m["merged_into"] for m in imp.result["merged"]} == {3: 1, 17: 4}
    assert sorted(imp.rejected()) == [5, 10]
    assert imp.rejected()[5] == "no e-mail and no phone"
    kenji = imp.record(1)
    assert (kenji["email"], kenji["phone"], kenji["timezone"]) == (
        "kenji.sato@example.net", "+12025550133", "America/Los_Angeles")
    assert imp.rows[3]["contact_id"] == imp.rows[1]["contact_id"]
    lucia = imp.record(4)
    assert lucia["phone"] == "+12025550112" and lucia["timezone"] is None
    assert lucia["first_name"] in ("Lucía", "Lucia")
    assert imp.record(8)["email"] is None and imp.record(8)["phone"]
    assert sum(1 for c in imp.contacts.values() if c["phone"]) == 12
    assert sum(1 for c in imp.contacts.values() if c["timezone"] is None) == 3
    assert imp.record(12)["name"] == "伟 张" or imp.record(12)["first_name"] == "伟"
    assert imp.record(15)["email"] == imp.record(15)["email"].strip()
    assert (imp.record(19)["phone"], imp.record(19)["phone_extension"]) == ("+12025550139", "5")


def test_salesforce_report_ignores_footer_and_records_email_and_call_opt_outs(rpc):
    imp = Imported(rpc, "salesforce")
    counts = imp.result["counts"]
    assert (counts["created"], counts["merged"], counts["rejected"]) == (20, 1, 1)
    assert counts["records"] == 22  # the three footer lines are neither contacts nor rejections
    assert len(imp.contacts) == 20
    assert [m["record"] for m in imp.result["merged"]] == [3]
    assert list(imp.rejected()) == [12]
    assert "aoife.kelly@example" in imp.rejected()[12]
    assert imp.records_where(lambda c: c["unsubscribed"]["email"]) == [5, 9, 20]
    assert imp.records_where(lambda c: c["unsubscribed"]["phone"]) == [2, 9]
    assert imp.records_where(lambda c: c["unsubscribed"]["sms"]) == []
    assert [h["source"] for h in imp.history(imp.record(2), "phone")] == ["import"]
    assert imp.record(2)["phone"] == "+447700900390"
    assert imp.record(4)["phone"] == "+33199002144"
    assert imp.record(16)["custom"]["Title"] == "VP, Partnerships"
    r19 = imp.record(19)
    assert (r19["email"], r19["phone"]) == (None, "+447700900505")


def test_salesforce_report_after_mailchimp_updates_the_same_person(rpc):
    mailchimp = Imported(rpc, "mailchimp")
    olivia_before = rpc.contacts.find_contact(mailchimp.ctx, {"email": "olivia.brandt@example.com"})
    sf = Imported(rpc, "salesforce", ctx=mailchimp.ctx)
    assert sf.rows[14]["outcome"] == "updated"
    assert sf.rows[14]["contact_id"] == olivia_before["id"]
    assert sf.result["counts"]["created"] == 19
    assert len(sf.contacts) == 30 + 19


def test_handmade_semicolon_sheet_imports_with_sms_opt_outs_and_zone_warnings(rpc):
    imp = Imported(rpc, "handmade")
    counts = imp.result["counts"]
    assert (counts["created"], counts["merged"], counts["rejected"]) == (15, 1, 2)
    assert counts["records"] == 18  # the trailing row of empty cells and blank line are ignored
    assert {m["record"]: m["merged_into"] for m in imp.result["merged"]} == {3: 1}
    assert sorted(imp.rejected()) == [4, 10]
    assert imp.records_where(lambda c: c["unsubscribed"]["sms"]) == [6, 7, 14]
    assert [h["source"] for h in imp.history(imp.record(6), "sms")] == ["import"]
    assert imp.warnings("timezone") == [6, 11]
    assert imp.record(6)["timezone"] is None and imp.record(11)["timezone"] is None
    assert imp.record(5)["phone"] is None and 5 in imp.warnings("phone")
    lena = imp.record(1)
    assert (lena["email"], lena["phone"], lena["timezone"]) == (
        "lena.fischer@example.com", "+447700900150", "Europe/Berlin")
    assert imp.record(2)["custom"]["Notes"] == "Wants pricing; call after 3pm"
    assert imp.record(7)["custom"]["Notes"] == "Met at booth.\nFollow up in January"
    assert imp.record(12)["name"] == "周明 (Ming Zhou)"
    assert imp.record(16)["custom"]["Notes"] == "Budget: 1.500,00 EUR" or \
        "1.500,00 EUR" in str(imp.record(16)["custom"])
