"""An admin's unsubscribe in the contact UI always records source admin (spec 131): the route
refuses a client-chosen source instead of storing it."""


def test_admin_unsubscribe_records_source_admin_and_refuses_another_source(owner):
    contact = owner.post("/api/v1/contacts", json={"name": "Tomás Rivera", "email": "tomas@example.org"}).json()
    path = f"/api/v1/contacts/{contact['id']}/unsubscribes"
    for source in ("api", "user_action", "import"):
        refused = owner.post(path, json={"channel": "email", "source": source})
        assert refused.status_code == 400, source
        assert list(refused.json()["errors"]) == ["source"]
    assert owner.get(f"/api/v1/contacts/{contact['id']}").json()["unsubscribe_history"] == []
    done = owner.post(path, json={"channel": "email"})
    assert done.status_code == 200, done.text
    assert done.json()["unsubscribed"]["email"] is True
    assert owner.post(path, json={"channel": "email", "unsubscribed": False, "source": "admin"}).status_code == 200
    history = owner.get(f"/api/v1/contacts/{contact['id']}").json()["unsubscribe_history"]
    assert [(h["source"], h["unsubscribed"]) for h in history] == [("admin", True), ("admin", False)]
