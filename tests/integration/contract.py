"""The wire contract as the integration tests hold the daemon to it.

proto/openapi.yaml says, for every route of the daemon, which statuses it
answers and with which body schema (proto/schemas/*.json, JSON Schema
2020-12). `Contract.check_response` takes one HTTP exchange and fails
(AssertionError) when the answer is not what the spec says:

  * the path matches no route: only 404 (components/responses/NoRoute),
    401 (components/responses/Unauthorized: a daemon with a token file
    tells nothing about paths without a token), 413 or 503 may come back;
  * the path matches a route but not with this verb: 405 with an Allow header
    (components/responses/MethodNotAllowed), or 401 / 413 / 503;
  * otherwise the status must be listed under the operation, the
    Content-Type must be one the response lists, headers the response marks
    `required` must be there (WWW-Authenticate on a 401), and a JSON body must parse
    strictly (no duplicate keys, no NaN/Infinity) and validate against the
    response's schema. HEAD is checked as GET, without a body.

conftest.py's Client runs every response through this, so a change of the
daemon that the spec does not describe fails the tests (and the other way
round). python3-jsonschema (Debian: 4.10, RefResolver) and python3-yaml;
newer jsonschema with the `referencing` package works too.
"""

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto"
OPENAPI = PROTO / "openapi.yaml"
SCHEMAS = PROTO / "schemas"
EXAMPLES = PROTO / "examples"

# Answers any route (or no route) can give: see openapi.yaml's description.
ANY_ROUTE = {413: "TooLarge", 503: "Unavailable"}
# ... and what a path or verb with no operation can give besides 404 / 405
# (a 401 on a path that has operations must be listed under the operation).
NO_OPERATION = {401: "Unauthorized"}


class StrictJSONError(ValueError):
    pass


def strict_loads(data):
    """json.loads that refuses what the daemon must never print: duplicate
    keys, NaN / Infinity, bytes that are not UTF-8."""

    def pairs(kv):
        keys = [k for k, _ in kv]
        if len(set(keys)) != len(keys):
            raise StrictJSONError(f"duplicate keys in {keys}")
        return dict(kv)

    def constant(name):
        raise StrictJSONError(f"{name} is not JSON")

    if isinstance(data, (bytes, bytearray)):
        data = bytes(data).decode("utf-8")
    return json.loads(data, object_pairs_hook=pairs, parse_constant=constant)


def _load_schemas():
    """Every schema file, keyed by its file URI (set as its $id, so refs
    between files resolve relative to it)."""
    store = {}
    for p in sorted(SCHEMAS.glob("*.json")):
        doc = strict_loads(p.read_bytes())
        uri = p.resolve().as_uri()
        doc = dict(doc)
        doc["$id"] = uri
        store[uri] = doc
    return store


def _validator_factory(store):
    try:  # jsonschema >= 4.18
        from referencing import Registry, Resource

        registry = Registry().with_resources(
            (uri, Resource.from_contents(doc)) for uri, doc in store.items())

        def make(schema):
            return Draft202012Validator(schema, registry=registry)
    except ImportError:  # Debian bookworm's 4.10
        from jsonschema import RefResolver

        def make(schema):
            return Draft202012Validator(
                schema, resolver=RefResolver(base_uri=schema.get("$id", ""), referrer=schema,
                                             store=store))
    return make


def _template_regex(template):
    parts = []
    for seg in template.strip("/").split("/"):
        parts.append("[^/]+" if seg.startswith("{") and seg.endswith("}") else re.escape(seg))
    return re.compile("^/" + "/".join(parts) + "$")


class Contract:
    def __init__(self):
        self.api = yaml.safe_load(OPENAPI.read_text())
        self.store = _load_schemas()
        self._make = _validator_factory(self.store)
        self._validators = {}
        # literal templates first: /v1/jobs must not be taken for /v1/jobs/{job}
        self.routes = sorted(((_template_regex(t), t, item) for t, item in self.api["paths"].items()),
                             key=lambda r: r[1].count("{"))

    # ---- schemas ----

    def schema_uri(self, ref):
        """A $ref of openapi.yaml ("schemas/x.json#/$defs/y") as an absolute URI."""
        path, _, frag = ref.partition("#")
        uri = (PROTO / path).resolve().as_uri()
        return uri + ("#" + frag if frag else "")

    def validator(self, ref):
        """A validator for a schema file (name, or openapi-relative ref)."""
        if "/" not in ref.split("#")[0]:
            ref = "schemas/" + ref
        uri = self.schema_uri(ref)
        v = self._validators.get(uri)
        if v is None:
            wrapper = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                       "$id": (PROTO / "openapi.yaml").resolve().as_uri() + ".wrapper",
                       "$ref": uri}
            v = self._validators[uri] = self._make(wrapper)
        return v

    def validate(self, ref, doc, what=""):
        errors = sorted(self.validator(ref).iter_errors(doc), key=lambda e: list(e.path))
        if errors:
            lines = [f"{what} does not match {ref}:"]
            for e in errors[:5]:
                loc = "/".join(str(x) for x in e.absolute_path) or "(top)"
                lines.append(f"  at {loc}: {e.message[:300]}")
            raise AssertionError("\n".join(lines))

    # ---- routes ----

    def _deref(self, obj):
        while isinstance(obj, dict) and "$ref" in obj and obj["$ref"].startswith("#/"):
            node = self.api
            for part in obj["$ref"][2:].split("/"):
                node = node[part]
            obj = node
        return obj

    def match(self, path):
        """(template, path item) for a request path, or (None, None)."""
        for rx, template, item in self.routes:
            if rx.match(path):
                return template, item
        return None, None

    def operations(self):
        """Every (VERB, template) the spec has."""
        verbs = ("get", "put", "post", "delete", "patch", "head", "options")
        return {(v.upper(), t) for t, item in self.api["paths"].items() for v in verbs if v in item}

    def response_spec(self, method, path, status):
        """The OpenAPI response object for an exchange, or an AssertionError."""
        path = urlsplit(path).path
        template, item = self.match(path)
        verb = "get" if method.upper() == "HEAD" else method.lower()
        where = f"{method} {path} -> {status}"
        if status in ANY_ROUTE:
            return self._deref({"$ref": "#/components/responses/" + ANY_ROUTE[status]}), where
        if template is None:
            if status in NO_OPERATION:
                return self._deref({"$ref": "#/components/responses/" + NO_OPERATION[status]}), where
            assert status == 404, f"{where}: no route has this path, so only 404/401/413/503"
            return self._deref({"$ref": "#/components/responses/NoRoute"}), where
        where = f"{method} {path} ({method} {template}) -> {status}"
        if verb not in item:
            if status in NO_OPERATION:
                return self._deref({"$ref": "#/components/responses/" + NO_OPERATION[status]}), where
            assert status == 405, f"{where}: the spec has no such operation, so only 405/401/413/503"
            return self._deref({"$ref": "#/components/responses/MethodNotAllowed"}), where
        responses = item[verb]["responses"]
        assert str(status) in responses, (
            f"{where}: status {status} is not in openapi.yaml (it lists {sorted(responses)})")
        return self._deref(responses[str(status)]), where

    def check_response(self, method, path, status, headers, body):
        """Fail unless (status, headers, body) is what openapi.yaml says for
        method + path. `headers` is a dict with lower-case names."""
        resp, where = self.response_spec(method, path, status)
        if status == 405:
            assert headers.get("allow"), f"{where}: a 405 without an Allow header"
        for name, h in (resp.get("headers") or {}).items():
            if h.get("required"):
                assert name.lower() in headers, f"{where}: no {name} header"
        content = resp.get("content") or {}
        if method.upper() == "HEAD":
            return
        ctype = headers.get("content-type", "")
        media = ctype.split(";")[0].strip().lower()
        assert media in content, (
            f"{where}: Content-Type {ctype!r} is not one openapi.yaml lists ({sorted(content)})")
        if media != "application/json":
            bytes(body).decode("utf-8")
            return
        try:
            doc = strict_loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise AssertionError(f"{where}: the body is not strict JSON ({e}): {body[:200]!r}")
        schema = content[media]["schema"]
        self.validate(schema["$ref"], doc, f"{where}: {body[:300]!r}")


_contract = None


def contract():
    """The one Contract of the test session (loaded on first use)."""
    global _contract
    if _contract is None:
        _contract = Contract()
    return _contract
