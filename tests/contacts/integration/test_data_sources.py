"""Data sources: a file source keeps its mapping and import history; an SFTP source (a real SFTP
server on 127.0.0.1, asyncssh, started by the test) lists CSV files and imports the chosen ones.
And an XLSX upload imports like a CSV."""
import asyncio
import io
import json
import os
import shutil
import socket
import tempfile
import threading
import time

import asyncssh
import openpyxl
import pytest

from tests.conftest import read_fixture

HANDMADE = {"email": "E-mail", "phone": "Mobile", "name": "Name", "timezone": "Timezone",
            "unsubscribe": {"sms": "SMS opt-out"}}
USER, PASSWORD = "larkspur", "sftp-test-pass-7"


class SftpServer:
    """asyncssh SFTP server chrooted to a temp folder, on its own loop in a thread."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="sftp-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.fingerprint = self.host_key.get_fingerprint("sha256")
        self.password_attempts = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        assert self.ready.wait(20)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        root = self.root
        server = self

        class Server(asyncssh.SSHServer):
            def begin_auth(self, username):
                return True

            def password_auth_supported(self):
                return True

            def validate_password(self, username, password):
                server.password_attempts += 1
                return username == USER and password == PASSWORD

        async def start():
            self.server = await asyncssh.create_server(
                Server, "127.0.0.1", self.port, server_host_keys=[self.host_key],
                sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root))
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def put(self, name, data):
        os.makedirs(os.path.join(self.root, "exports"), exist_ok=True)
        with open(os.path.join(self.root, "exports", name), "wb") as f:
            f.write(data)

    def stop(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def sftp():
    server = SftpServer()
    yield server
    server.stop()


def wait_done(api, import_id, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        imp = api.get(f"/api/v1/contacts/imports/{import_id}").json()
        if imp["status"] in ("completed", "failed"):
            return imp
        time.sleep(0.2)
    raise AssertionError("import did not finish")


def test_sftp_source_lists_csv_files_and_imports_the_chosen_one(owner, sftp):
    sftp.put("tradeshow.csv", read_fixture("contacts", "tradeshow_leads_handmade.csv"))
    sftp.put("notes.pdf", b"%PDF-1.4 not a contact list")
    created = owner.post("/api/v1/data-sources", json={
        "kind": "sftp", "name": "Trade show drop", "mapping": HANDMADE,
        "sftp": {"host": "127.0.0.1", "port": sftp.port, "username": USER, "password": PASSWORD,
                 "path": "/exports", "host_key_fingerprint": sftp.fingerprint}})
    assert created.status_code == 201, created.text
    source = created.json()
    assert PASSWORD not in str(source) and source["settings"]["password_set"] is True
    files = owner.get(f"/api/v1/data-sources/{source['id']}/files")
    assert files.status_code == 200, files.text
    assert [f["name"] for f in files.json()["files"]] == ["tradeshow.csv"]
    sync = owner.post(f"/api/v1/data-sources/{source['id']}/sync", json={"files": ["tradeshow.csv"]})
    assert sync.status_code == 202, sync.text
    imp = wait_done(owner, sync.json()["imports"][0]["id"])
    assert imp["status"] == "completed", imp
    assert (imp["counts"]["created"], imp["counts"]["rejected"]) == (15, 2)
    detail = owner.get(f"/api/v1/data-sources/{source['id']}").json()
    assert detail["last_sync_at"] and detail["last_result"]["created"] == 15
    assert [i["id"] for i in detail["imports"]] == [imp["id"]]
    missing = owner.post(f"/api/v1/data-sources/{source['id']}/sync", json={"files": ["../etc/passwd"]})
    assert missing.status_code == 400


def test_sftp_source_with_a_wrong_password_says_so(owner, sftp):
    source = owner.post("/api/v1/data-sources", json={
        "kind": "sftp", "name": "Wrong", "mapping": HANDMADE,
        "sftp": {"host": "127.0.0.1", "port": sftp.port, "username": USER, "password": "nope",
                 "path": "/exports", "host_key_fingerprint": sftp.fingerprint}}).json()
    resp = owner.get(f"/api/v1/data-sources/{source['id']}/files")
    assert resp.status_code == 400 and "sign in" in resp.json()["message"]


def test_sftp_source_refuses_an_unconfirmed_host_key_until_its_fingerprint_is_saved(owner, sftp):
    sftp.put("tradeshow.csv", read_fixture("contacts", "tradeshow_leads_handmade.csv"))
    source = owner.post("/api/v1/data-sources", json={
        "kind": "sftp", "name": "New server", "mapping": HANDMADE,
        "sftp": {"host": "127.0.0.1", "port": sftp.port, "username": USER, "password": PASSWORD,
                 "path": "/exports"}}).json()
    first = owner.get(f"/api/v1/data-sources/{source['id']}/files")
    assert first.status_code == 400, first.text
    body = first.json()
    assert "not confirmed" in body["message"]
    assert sftp.fingerprint in body["errors"]["sftp.host_key_fingerprint"][0]
    assert sftp.password_attempts == 0  # the password never went to an unconfirmed server
    pinned = owner.patch(f"/api/v1/data-sources/{source['id']}",
                         json={"sftp": {"host_key_fingerprint": sftp.fingerprint}})
    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["settings"]["host_key_fingerprint"] == sftp.fingerprint
    files = owner.get(f"/api/v1/data-sources/{source['id']}/files")
    assert files.status_code == 200, files.text
    assert [f["name"] for f in files.json()["files"]] == ["tradeshow.csv"]


def test_sftp_source_refuses_a_server_whose_host_key_changed(owner, sftp):
    other = asyncssh.generate_private_key("ssh-ed25519").get_fingerprint("sha256")
    source = owner.post("/api/v1/data-sources", json={
        "kind": "sftp", "name": "Moved server", "mapping": HANDMADE,
        "sftp": {"host": "127.0.0.1", "port": sftp.port, "username": USER, "password": PASSWORD,
                 "path": "/exports", "host_key_fingerprint": other}}).json()
    for resp in (owner.get(f"/api/v1/data-sources/{source['id']}/files"),
                 owner.post(f"/api/v1/data-sources/{source['id']}/sync", json={"files": ["x.csv"]})):
        assert resp.status_code == 400, resp.text
        assert "does not match" in resp.json()["message"]
        message = resp.json()["errors"]["sftp.host_key_fingerprint"][0]
        assert other in message and sftp.fingerprint in message
    assert sftp.password_attempts == 0


def test_file_source_keeps_its_mapping_and_history(owner):
    source = owner.post("/api/v1/data-sources", json={"kind": "file", "name": "Booth scans",
                                                      "mapping": HANDMADE}).json()
    data = read_fixture("contacts", "tradeshow_leads_handmade.csv")
    first = owner.post(f"/api/v1/data-sources/{source['id']}/imports", files={"file": ("a.csv", data)})
    assert first.status_code == 202, first.text
    assert wait_done(owner, first.json()["id"])["counts"]["created"] == 15
    second = owner.post(f"/api/v1/data-sources/{source['id']}/imports", files={"file": ("a.csv", data)})
    assert wait_done(owner, second.json()["id"])["counts"]["unchanged"] == 15
    detail = owner.get(f"/api/v1/data-sources/{source['id']}").json()
    assert detail["mapping"]["email"] == "E-mail" and len(detail["imports"]) == 2


def test_xlsx_upload_imports_like_a_csv(owner):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Email", "Name", "Phone", "Country", "Plan"])
    sheet.append(["Grace.Okafor@example.org", "Grace Okafor", "07700 900123", "GB", "gold"])
    sheet.append(["ben.adler@example.org", "Ben Adler", 2025550124, "US", None])
    sheet.append(["not-an-address", "Nobody", None, None, None])
    buf = io.BytesIO()
    book.save(buf)
    upload = owner.post("/api/v1/contacts/uploads", files={"file": ("leads.xlsx", buf.getvalue())})
    assert upload.status_code == 201, upload.text
    assert upload.json()["columns"] == ["Email", "Name", "Phone", "Country", "Plan"]
    mapping = upload.json()["suggested_mapping"]
    assert (mapping["email"], mapping["phone"], mapping["country"]) == ("Email", "Phone", "Country")
    imp = owner.post("/api/v1/contacts/imports", json={"upload_id": upload.json()["upload_id"],
                                                       "mapping": mapping, "mode": "sync"}).json()
    assert (imp["counts"]["created"], imp["counts"]["rejected"]) == (2, 1)
    grace = owner.get("/api/v1/contacts", params={"q": "grace.okafor"}).json()["contacts"][0]
    assert (grace["phone"], grace["custom"]) == ("+447700900123", {"Plan": "gold"})
    ben = owner.get("/api/v1/contacts", params={"q": "ben.adler"}).json()["contacts"][0]
    assert ben["phone"] == "+12025550124"


def test_a_source_that_cannot_be_read_says_why_and_records_the_failed_sync(owner, sftp):
    source = owner.post("/api/v1/data-sources", json={
        "kind": "sftp", "name": "Wrong folder", "mapping": HANDMADE,
        "sftp": {"host": "127.0.0.1", "port": sftp.port, "username": USER, "password": PASSWORD,
                 "path": "/no-such-folder", "host_key_fingerprint": sftp.fingerprint}}).json()
    assert source["last_sync_at"] is None
    for resp in (owner.get(f"/api/v1/data-sources/{source['id']}/files"),
                 owner.post(f"/api/v1/data-sources/{source['id']}/sync", json={"files": ["a.csv"]})):
        assert resp.status_code == 400, resp.text
        assert "/no-such-folder" in resp.json()["errors"]["sftp.path"][0]
    detail = owner.get(f"/api/v1/data-sources/{source['id']}").json()
    assert detail["last_sync_at"] is not None
    assert detail["last_result"]["status"] == "failed"
    assert "cannot read the SFTP folder" in detail["last_result"]["error"]


def test_a_wrong_password_is_recorded_on_the_source(owner, sftp):
    source = owner.post("/api/v1/data-sources", json={
        "kind": "sftp", "name": "Wrong", "mapping": HANDMADE,
        "sftp": {"host": "127.0.0.1", "port": sftp.port, "username": USER, "password": "nope",
                 "path": "/exports", "host_key_fingerprint": sftp.fingerprint}}).json()
    assert owner.get(f"/api/v1/data-sources/{source['id']}/files").status_code == 400
    result = owner.get(f"/api/v1/data-sources/{source['id']}").json()["last_result"]
    assert result["status"] == "failed" and "sign in" in result["error"]
    assert "nope" not in json.dumps(result)


def test_a_source_import_that_fails_records_it_on_the_source(owner):
    source = owner.post("/api/v1/data-sources", json={"kind": "file", "name": "Scans",
                                                      "mapping": HANDMADE}).json()
    bad = (b'Name,E-mail,Mobile,Timezone,SMS opt-out\r\n'
           b'Ana,ana@example.com,,,\r\nBen,ben@example.com,"never closed,,\r\n')
    queued = owner.post(f"/api/v1/data-sources/{source['id']}/imports", files={"file": ("a.csv", bad)})
    assert queued.status_code == 202, queued.text
    imp = wait_done(owner, queued.json()["id"])
    assert imp["status"] == "failed"
    result = owner.get(f"/api/v1/data-sources/{source['id']}").json()["last_result"]
    assert (result["status"], result["import_id"]) == ("failed", imp["id"])
    assert "unterminated quote" in result["error"]


def test_a_new_mapping_is_saved_on_the_source_only_when_it_fits(owner):
    source = owner.post("/api/v1/data-sources", json={"kind": "file", "name": "Scans",
                                                      "mapping": HANDMADE}).json()
    saved = source["mapping"]
    assert dict(saved, custom=None) == dict(HANDMADE, custom=None)
    data = read_fixture("contacts", "tradeshow_leads_handmade.csv")
    nul = owner.post(f"/api/v1/data-sources/{source['id']}/imports", files={"file": ("a.csv", data)},
                     data={"mapping": json.dumps({"email": "E\u0000mail"})})
    assert nul.status_code == 400, nul.text
    assert nul.json()["errors"] == {"mapping.email": ["contains a NUL character"]}
    missing = owner.post(f"/api/v1/data-sources/{source['id']}/imports", files={"file": ("a.csv", data)},
                         data={"mapping": json.dumps({"email": "Work e-mail"})})
    assert missing.status_code == 400, missing.text
    assert owner.get(f"/api/v1/data-sources/{source['id']}").json()["mapping"] == saved
    fits = owner.post(f"/api/v1/data-sources/{source['id']}/imports", files={"file": ("a.csv", data)},
                      data={"mapping": json.dumps({"email": "E-mail", "name": "Name"})})
    assert fits.status_code == 202, fits.text
    assert owner.get(f"/api/v1/data-sources/{source['id']}").json()["mapping"]["email"] == "E-mail"
    assert "phone" not in owner.get(f"/api/v1/data-sources/{source['id']}").json()["mapping"]


def test_a_sync_queues_every_chosen_file_or_none(owner, sftp):
    sftp.put("good.csv", read_fixture("contacts", "tradeshow_leads_handmade.csv"))
    sftp.put("other.csv", b"Work mail,Full name\r\nana@example.com,Ana\r\n")  # the mapping does not fit
    source = owner.post("/api/v1/data-sources", json={
        "kind": "sftp", "name": "Drop", "mapping": HANDMADE,
        "sftp": {"host": "127.0.0.1", "port": sftp.port, "username": USER, "password": PASSWORD,
                 "path": "/exports", "host_key_fingerprint": sftp.fingerprint}}).json()
    resp = owner.post(f"/api/v1/data-sources/{source['id']}/sync", json={"files": ["good.csv", "other.csv"]})
    assert resp.status_code == 400, resp.text
    assert "no column 'E-mail'" in str(resp.json()["errors"])
    assert owner.get(f"/api/v1/data-sources/{source['id']}").json()["imports"] == []
    assert owner.get("/api/v1/contacts/imports").json()["imports"] == []
