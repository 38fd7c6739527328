"""proto/ itself: the schemas are valid JSON Schema 2020-12, openapi.yaml's
references resolve, its routes are exactly server/router.c's table, every
example validates and the daemon accepts the example requests, and the
contract checker that conftest runs on every answer does catch drift."""

import json
import re

import pytest
import yaml
from jsonschema import Draft202012Validator

from conftest import ROOT
from contract import EXAMPLES, OPENAPI, PROTO, SCHEMAS, contract, strict_loads

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def schema_files():
    return sorted(SCHEMAS.glob("*.json"))


def example_files():
    return sorted(EXAMPLES.glob("*.json"))


def example(name):
    return strict_loads((EXAMPLES / name).read_bytes())


@pytest.mark.parametrize("path", schema_files(), ids=lambda p: p.name)
def test_schema_is_valid_2020_12(path):
    doc = strict_loads(path.read_bytes())
    assert doc.get("$schema") == DRAFT
    assert doc.get("title") and doc.get("description")
    Draft202012Validator.check_schema(doc)


def _refs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("$ref", "externalValue") and isinstance(v, str):
                out.append(v)
            else:
                _refs(v, out)
    elif isinstance(node, list):
        for v in node:
            _refs(v, out)
    return out


def _pointer(doc, frag):
    for part in [p for p in frag.split("/") if p]:
        doc = doc[part.replace("~1", "/").replace("~0", "~")]
    return doc


def test_openapi_references_resolve():
    api = yaml.safe_load(OPENAPI.read_text())
    assert api["openapi"].startswith("3.1")
    refs = _refs(api, [])
    assert refs
    for ref in refs:
        path, _, frag = ref.partition("#")
        if not path:
            _pointer(api, frag)
            continue
        f = PROTO / path
        assert f.is_file(), ref
        if f.suffix == ".json":
            _pointer(strict_loads(f.read_bytes()), frag)
    # and the references between schema files
    for p in schema_files():
        for ref in _refs(strict_loads(p.read_bytes()), []):
            path, _, frag = ref.partition("#")
            target = strict_loads((SCHEMAS / path).read_bytes()) if path else strict_loads(p.read_bytes())
            _pointer(target, frag)


def test_every_schema_is_used():
    used = {r.partition("#")[0] for r in _refs(yaml.safe_load(OPENAPI.read_text()), [])}
    for p in schema_files():
        used |= {"schemas/" + r.partition("#")[0] for r in _refs(strict_loads(p.read_bytes()), [])
                 if r.partition("#")[0]}
    for p in schema_files():
        assert "schemas/" + p.name in used, p.name


def router_table():
    src = (ROOT / "server" / "router.c").read_text()
    table = src[src.index("routes[] = {"):]
    table = table[:table.index("};")]
    return set(re.findall(r'\{"(GET|PUT|POST|DELETE|PATCH)",\s*"([^"]+)"', table))


def test_openapi_has_exactly_the_routes_of_the_router():
    routes = router_table()
    assert len(routes) >= 13
    assert contract().operations() == routes


ROLE_NAMES = {"ROLE_OPEN": "open", "ROLE_READER": "reader", "ROLE_TRAINER": "trainer",
              "ROLE_ADMIN": "admin"}
SCOPE_NAMES = {"SCOPE_JOB": "job", "SCOPE_LIST": "list", "SCOPE_ANY": "any",
               "SCOPE_DAEMON": "daemon"}


def router_roles():
    """{(verb, pattern): (role, scope)} from router.c's table."""
    src = (ROOT / "server" / "router.c").read_text()
    table = src[src.index("routes[] = {"):]
    table = table[:table.index("};")]
    rows = re.findall(r'\{"(GET|PUT|POST|DELETE|PATCH)",\s*"([^"]+)",\s*\w+,\s*"\w+",\s*'
                      r'(ROLE_\w+),\s*(SCOPE_\w+),', table)
    return {(v, p): (ROLE_NAMES[r], SCOPE_NAMES[s]) for v, p, r, s in rows}


def test_openapi_roles_and_auth_answers_are_the_routers():
    """x-lossweight-role / -scope are router.c's columns; 401 is listed
    exactly where a token is needed, 403 where a token can fall short (a
    role above reader, a job prefix that applies)."""
    api = yaml.safe_load(OPENAPI.read_text())
    roles = router_roles()
    assert set(roles) == router_table()
    for (verb, path), (role, scope) in roles.items():
        op = api["paths"][path][verb.lower()]
        assert (op["x-lossweight-role"], op["x-lossweight-scope"]) == (role, scope), (verb, path)
        responses = op["responses"]
        assert ("401" in responses) == (role != "open"), (verb, path)
        can_403 = role not in ("open", "reader") or scope in ("job", "daemon")
        assert ("403" in responses) == can_403, (verb, path)
        assert (op.get("security") == [{}]) == (role == "open"), (verb, path)


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_example_validates_against_its_schema(path):
    """examples/NAME.json and examples/NAME.VARIANT.json are bodies of schemas/NAME.json."""
    schema = path.name.split(".")[0] + ".json"
    assert (SCHEMAS / schema).is_file(), f"{path.name}: no schemas/{schema}"
    contract().validate(schema, strict_loads(path.read_bytes()), path.name)


def test_openapi_examples_validate_against_their_media_type():
    api = yaml.safe_load(OPENAPI.read_text())
    seen = 0
    for item in api["paths"].values():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            media = []
            if "requestBody" in op:
                media += op["requestBody"]["content"].values()
            for resp in op.get("responses", {}).values():
                resp = contract()._deref(resp)
                media += (resp.get("content") or {}).values()
            for m in media:
                for ex in (m.get("examples") or {}).values():
                    doc = strict_loads((PROTO / ex["externalValue"]).read_bytes())
                    contract().validate(m["schema"]["$ref"], doc, ex["externalValue"])
                    seen += 1
    assert seen >= 10


def test_the_exported_state_example_is_also_a_restore_body():
    contract().validate("state-restore.json", example("state.json"), "state.json")


def test_the_daemon_accepts_the_example_requests(client):
    spec, rep = example("job-spec.json"), example("report.json")
    st, doc = client.put("/v1/jobs/ctr-cvr-7", spec)
    assert st == 201
    assert doc == example("job-created.json")
    st, doc = client.put("/v1/jobs/priors", example("job-spec.priors.json"))
    assert st == 201
    # the report example: rank 2 of 4, so it waits; ?wait_ms=0 answers 202
    st, doc = client.post("/v1/jobs/ctr-cvr-7/reports?wait_ms=0", rep)
    assert st == 202 and doc["ranks"] == 1
    for r in (0, 1, 3):
        st, doc = client.post("/v1/jobs/ctr-cvr-7/reports?wait_ms=0", dict(rep, rank=r))
    assert st == 200 and doc["step"] == rep["step"] and doc["ranks"] == 4


def test_the_state_example_restores_to_the_decision_example(client):
    """examples/state.json is the job just before rank 2 reported step 1041
    (examples/report.json); restored and fed that report, it decides
    examples/decision.json bit for bit."""
    st, doc = client.put("/v1/jobs/ctr-cvr-7/state", example("state.json"))
    assert st == 201
    st, _, body = client.raw("POST", "/v1/jobs/ctr-cvr-7/reports",
                             (EXAMPLES / "report.json").read_bytes())
    assert st == 200
    assert strict_loads(body) == example("decision.json")
    # the same job as the view example, but for the history before the
    # export's latest decision (not exported)
    st, doc = client.get("/v1/jobs/ctr-cvr-7")
    want = example("job-view.json")
    assert doc["status"].pop("history") == {"kept": 2, "max": 10000, "oldest": 1040}
    want["status"].pop("history")
    assert doc == want


# ---- the checker itself ----

def expect_drift(method, path, status, body, ctype="application/json", headers=None):
    h = {"content-type": ctype}
    h.update(headers or {})
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(AssertionError):
        contract().check_response(method, path, status, h, data)


def test_the_checker_accepts_the_examples():
    c = contract()
    c.check_response("GET", "/v1/jobs/ctr-cvr-7", 200, {"content-type": "application/json"},
                     (EXAMPLES / "job-view.json").read_bytes())
    c.check_response("POST", "/v1/jobs/x/reports?wait_ms=0", 202,
                     {"content-type": "application/json"}, (EXAMPLES / "pending.json").read_bytes())
    c.check_response("HEAD", "/v1/jobs/x", 200, {}, b"")


def test_the_checker_catches_drift():
    dec = example("decision.json")
    expect_drift("GET", "/v1/jobs/x/weights", 200, dict(dec, extra=1))          # unknown field
    expect_drift("GET", "/v1/jobs/x/weights", 200, {k: v for k, v in dec.items() if k != "ranks"})
    expect_drift("GET", "/v1/jobs/x/weights", 200, dict(dec, status="pending"))
    expect_drift("GET", "/v1/jobs/x/weights", 201, dec)                         # undocumented status
    expect_drift("GET", "/v1/jobs/x/weights", 200, dec, ctype="text/html")      # media type
    expect_drift("GET", "/v1/jobs/x/weights", 200, b'{"job": "x", "job": "x"}')  # duplicate key
    expect_drift("GET", "/v1/jobs/x/weights", 200,
                 json.dumps(dec).replace("[", "[NaN, ").encode())              # NaN
    expect_drift("GET", "/v1/jobs/x/weights", 404, {"error": {"code": "conflict", "message": "m"}})
    expect_drift("GET", "/v1/jobs/x/weights", 404, {"error": {"code": "no_decision"}})
    expect_drift("GET", "/v1/nothing", 200, {})                                 # no such route
    expect_drift("PATCH", "/v1/jobs/x", 405, {"error": {"code": "method_not_allowed",
                                                        "message": "m"}})      # no Allow header
    expect_drift("GET", "/healthz", 200, {"status": "ok", "version": "1", "uptime_s": -1, "jobs": 0})
