"""Job lifecycle: create (idempotent), list, show, delete; the daemon's own
resources (/v1/methods, /healthz); routing and body errors keep the shape
{"error": {"code", "message", "field"}}."""

import http.client

from conftest import methods_available

SPEC = {"tasks": ["ctr", "cvr"], "method": "ew", "world_size": 2}


def assert_error(status, doc, want_status):
    assert status == want_status, doc
    assert set(doc) == {"error"}, doc
    assert isinstance(doc["error"]["code"], str) and doc["error"]["code"]
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]


def test_create_is_idempotent_and_echoes_defaults(client):
    status, doc = client.put("/v1/jobs/j1", SPEC)
    assert status == 201, doc
    assert doc["job"] == "j1" and doc["created"] is True
    spec = doc["spec"]
    assert spec["tasks"] == ["ctr", "cvr"] and spec["method"] == "ew"
    assert spec["world_size"] == 2 and spec["sync"] == "barrier"
    assert spec["barrier_timeout_ms"] == 60000 and spec["min_ranks"] == 2
    assert spec["seed"] == 0 and spec["params"] == {}

    status, again = client.put("/v1/jobs/j1", SPEC)
    assert status == 200 and again["created"] is False and again["spec"] == spec
    # the canonical spec itself is the same spec
    status, again = client.put("/v1/jobs/j1", spec)
    assert status == 200

    status, doc = client.put("/v1/jobs/j1", dict(SPEC, world_size=3))
    assert_error(status, doc, 409)
    status, doc = client.get("/v1/jobs/j1")
    assert doc["spec"]["world_size"] == 2


def test_list_show_delete(client):
    assert client.put("/v1/jobs/b", SPEC)[0] == 201
    assert client.put("/v1/jobs/a", dict(SPEC, sync="async"))[0] == 201
    status, doc = client.get("/v1/jobs")
    assert status == 200
    assert [j["job"] for j in doc["jobs"]] == ["a", "b"]
    for j in doc["jobs"]:
        assert isinstance(j["status"], str) and "\n" not in j["status"]
        assert j["method"] == "ew" and j["world_size"] == 2

    status, doc = client.get("/v1/jobs/b")
    assert status == 200
    assert doc["job"] == "b" and doc["spec"]["method"] == "ew"
    assert doc["latest"] is None and doc["status"]["last_decided"] is None
    assert isinstance(doc["state"], dict)

    status, doc = client.delete("/v1/jobs/b")
    assert status == 200 and doc == {"job": "b", "deleted": True}
    assert_error(*client.get("/v1/jobs/b"), 404)
    assert_error(*client.delete("/v1/jobs/b"), 404)
    status, doc = client.get("/v1/jobs")
    assert [j["job"] for j in doc["jobs"]] == ["a"]


def test_job_state_in_words_after_a_step(client):
    methods = methods_available(client)
    method = "uw" if "uw" in methods else "ew"
    spec = {"tasks": ["a", "b", "c"], "method": method}
    assert client.put("/v1/jobs/w", spec)[0] == 201
    status, dec = client.post("/v1/jobs/w/reports", {"rank": 0, "step": 0, "losses": [1.0, 2.0, 3.0]})
    assert status == 200 and dec["status"] == "decided"
    status, doc = client.get("/v1/jobs/w")
    assert doc["latest"] == dec
    assert doc["status"]["last_decided"] == 0 and doc["status"]["steps_decided"] == 1
    if method == "uw":
        assert doc["state"], "uw shows its state (sigmas) in words"


def test_methods_and_healthz(client):
    status, doc = client.get("/v1/methods")
    assert status == 200
    names = [m["name"] for m in doc["methods"]]
    assert "ew" in names and "manual" in names
    # served from bytes printed once: the same bytes every time
    a = client.raw("GET", "/v1/methods")[2]
    b = client.raw("GET", "/v1/methods")[2]
    assert a == b
    status, doc = client.get("/healthz")
    assert status == 200 and doc["status"] == "ok"


def test_routing_errors(client):
    assert_error(*client.get("/v1/nothing"), 404)
    status, h, body = client.raw("POST", "/v1/jobs", "{}")
    assert status == 405 and "GET" in h["allow"]
    assert_error(*client.get("/v1/jobs/bad%20id"), 400)
    assert_error(*client.get("/v1/jobs/" + "x" * 129), 400)
    assert_error(*client.get("/v1/jobs/nosuch"), 404)
    status, doc = client.put("/v1/jobs/j", SPEC)
    assert status == 201
    assert_error(*client.get("/v1/jobs/j/steps/abc"), 400)


def test_body_errors_keep_the_connection(client):
    status, h, body = client.raw("PUT", "/v1/jobs/j", '{"tasks": [', None)
    assert status == 400
    status, h, body = client.raw("PUT", "/v1/jobs/j", "[" * 40 + "]" * 40)
    assert status == 400 and b"deeper" in body
    status, h, body = client.raw("PUT", "/v1/jobs/j", "{} {}")
    assert status == 400
    status, h, body = client.raw("PUT", "/v1/jobs/j", "{}", {"Content-Type": "text/plain"})
    assert status == 415
    # the same keep-alive connection still works
    assert client.put("/v1/jobs/j", SPEC)[0] == 201
    assert client.get("/v1/jobs/j")[0] == 200


def test_body_over_max_body_is_413(start_daemon):
    d = start_daemon("--max-body", "1024")
    c = d.client()
    assert c.put("/v1/jobs/j", SPEC)[0] == 201
    big = '{"rank": 0, "step": 0, "losses": [' + ", ".join(["1.0"] * 400) + "]}"
    assert len(big) > 1024
    status, h, body = c.raw("POST", "/v1/jobs/j/reports", big)
    assert status == 413
    # a fresh connection works (the daemon closed the one with the big body)
    c2 = d.client()
    assert c2.get("/v1/jobs/j")[0] == 200


def test_head_and_keep_alive(daemon):
    conn = http.client.HTTPConnection(daemon.host, daemon.port, timeout=10)
    try:
        for _ in range(50):
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            r.read()
            assert r.status == 200
            assert r.getheader("Connection", "").lower() != "close"
    finally:
        conn.close()
