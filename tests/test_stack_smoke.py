"""The stack starts the way `make run` starts it, and every service answers over RabbitMQ."""


def test_every_service_answers_ping_over_the_broker(stack):
    with stack.rpc() as rpc:
        for name in ("identity", "contacts", "campaigns", "messaging", "reporting"):
            assert getattr(rpc, name).ping() == {"service": name, "ok": True}


def test_gateway_serves_openapi_document(api):
    resp = api.get("/api/openapi.json")
    assert resp.status_code == 200
    assert resp.json()["openapi"] == "3.0.3"


def test_unknown_route_is_json_404(api):
    resp = api.get("/api/v1/no-such-thing")
    assert resp.status_code == 404
    assert resp.json()["error"] == "not_found"
