"""messaging.email_bounced: a hard bounce marks the address undeliverable for e-mail (the sender's
reachable() check says no, resolve_segment skips the contact as `undeliverable`), visible on the
contact with its time and diagnostic until an admin clears it; soft bounces block nothing."""
import time
import uuid

from nameko.standalone.events import event_dispatcher


def bounce(stack, org_id, identifier, bounce_type, event_id=None, diagnostic="550 5.1.1 user unknown"):
    dispatch = event_dispatcher({"AMQP_URI": stack.amqp_uri, "serializer": "json"})
    dispatch("messaging", "email_bounced", {
        "event_id": event_id or str(uuid.uuid4()), "org_id": org_id, "channel": "email",
        "identifier": identifier, "bounce_type": bounce_type, "diagnostic": diagnostic,
        "communication_id": str(uuid.uuid4()), "draft_id": None, "contact_id": None,
        "campaign_id": None, "run_id": None, "is_test": False})


def wait_for(check, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    return check()


def test_a_hard_bounce_makes_the_address_undeliverable_until_an_admin_clears_it(owner, stack, api):
    ruth = owner.post("/api/v1/contacts", json={"name": "Ruth Okafor", "email": "ruth.okafor@example.org",
                                                "phone": "+12025550177"}).json()
    owner.post("/api/v1/contacts", json={"name": "Sam Lee", "email": "sam.lee@example.org"})
    seg = owner.post("/api/v1/segments", json={"name": "All", "rules": [
        {"type": "field", "field": "email", "op": "exists"}]}).json()
    ctx = {"org_id": owner.org_id, "role": "system"}
    event_id = str(uuid.uuid4())
    bounce(stack, owner.org_id, "Ruth.Okafor@example.org", "hard", event_id)
    bounce(stack, owner.org_id, "Ruth.Okafor@example.org", "hard", event_id)  # redelivered
    contact = wait_for(lambda: (lambda c: c if c["email_undeliverable"] else None)(
        owner.get(f"/api/v1/contacts/{ruth['id']}").json()))
    assert contact["email_undeliverable"] is True
    assert contact["email_undeliverable_diagnostic"] == "550 5.1.1 user unknown"
    assert contact["email_undeliverable_at"]
    assert contact["reachable"] == {"email": False, "sms": True, "phone": True}
    assert contact["unsubscribed"]["email"] is False  # undeliverable is not an opt-out
    with stack.rpc() as rpc:
        assert rpc.contacts.reachable(ctx, {"channel": "email", "identifiers": [
            "ruth.okafor@example.org", "sam.lee@example.org"]}) == {
            "ruth.okafor@example.org": False, "sam.lee@example.org": True}
        page = rpc.contacts.resolve_segment(ctx, {"segment_id": seg["id"], "channel": "email"})
        by_id = {c["id"]: c for c in page["contacts"]}
        assert (by_id[ruth["id"]]["skip_reason"], by_id[ruth["id"]]["reachable"],
                by_id[ruth["id"]]["email"]) == ("undeliverable", False, None)
        sms = rpc.contacts.resolve_segment(ctx, {"segment_id": seg["id"], "channel": "sms"})
        assert {c["id"]: c["phone"] for c in sms["contacts"]}[ruth["id"]] == "+12025550177"
    # A member cannot clear it; an admin (the owner here) can.
    member_email = f"mia.{uuid.uuid4().hex[:8]}@example.org"
    added = owner.post("/api/v1/team", json={"email": member_email, "name": "Mia Member",
                                             "role": "member", "password": "correct horse battery staple 42"})
    assert added.status_code == 201, added.text
    login = api.post("/api/v1/auth/login", json={"email": member_email,
                                                 "password": "correct horse battery staple 42"})
    assert login.status_code == 200, login.text
    member = api.as_(login.json()["token"], owner.org_id)
    refused = member.patch(f"/api/v1/contacts/{ruth['id']}", json={"email_undeliverable": False})
    assert refused.status_code == 403, refused.text
    cleared = owner.patch(f"/api/v1/contacts/{ruth['id']}", json={"email_undeliverable": False})
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["email_undeliverable"], cleared.json()["reachable"]["email"]) == (False, True)
    with stack.rpc() as rpc:
        assert rpc.contacts.reachable(ctx, {"channel": "email", "identifiers": [
            "ruth.okafor@example.org"]}) == {"ruth.okafor@example.org": True}
    assert owner.patch(f"/api/v1/contacts/{ruth['id']}",
                       json={"email_undeliverable": True}).status_code == 400


def test_a_soft_bounce_blocks_nothing(owner, stack):
    kai = owner.post("/api/v1/contacts", json={"name": "Kai Berg", "email": "kai.berg@example.org"}).json()
    bounce(stack, owner.org_id, "kai.berg@example.org", "soft", diagnostic="452 4.2.2 mailbox full")
    # A hard bounce for another address, sent after it, shows both were handled.
    bounce(stack, owner.org_id, "nobody.here@example.org", "hard")
    ctx = {"org_id": owner.org_id, "role": "system"}
    with stack.rpc() as rpc:
        assert wait_for(lambda: rpc.contacts.reachable(ctx, {"channel": "email", "identifiers": [
            "nobody.here@example.org"]}) == {"nobody.here@example.org": False})
        assert rpc.contacts.reachable(ctx, {"channel": "email", "identifiers": [
            "kai.berg@example.org"]}) == {"kai.berg@example.org": True}
    contact = owner.get(f"/api/v1/contacts/{kai['id']}").json()
    assert (contact["email_undeliverable"], contact["reachable"]["email"]) == (False, True)
