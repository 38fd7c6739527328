"""The HTTP client for lossweightd: standard library only (http.client, json).

One kept-alive connection per process and thread: a trainer rank is normally
one process with one thread, so it talks to the daemon over one TCP
connection for the whole run. A forked child or another thread opens its own
(http.client connections are neither fork- nor thread-safe). A connection
that fails is dropped and reopened on the next call.

Retries. A report is safe to send again: the daemon answers a rank that posts
the same (step, body) twice with the same decision (DESIGN.md, "Sync
modes"), so `report` retries after connection errors (refused, reset,
closed, timed out) and 503 (the daemon shutting down or restarting) with
bounded exponential backoff. GET and PUT calls are idempotent too and get the
same treatment; DELETE is retried only when a kept-alive connection turned
out to be stale before any answer (a second DELETE would say 404). A body
over the daemon's --max-body is answered 413 from its headers and the
connection closed unread: the send fails, and the client reads that answer
(PayloadTooLarge) rather than retrying a broken pipe.

Numbers. Python's json prints floats with repr(), which reads back to the
same double, and parses the daemon's shortest round-trip numbers exactly, so
weights arrive bit for bit as the daemon computed them. NaN and infinities
are refused before anything is sent (the daemon would refuse them too).

Security. A daemon started with --token-file wants a bearer token on every
call but healthz: pass `token=`, or set LOSSWEIGHT_TOKEN in the environment
(read when `token` is not given). An https:// URL speaks TLS, verifying the
daemon's certificate against the system's CAs or `cafile=` (a PEM file,
e.g. the daemon's own self-signed certificate). 401 raises Unauthorized, 403
Forbidden; neither is retried, nor is a certificate that fails to verify.

Timeouts. In barrier mode a report waits until every rank has reported the
step (up to the job's barrier_timeout_ms, 60 s by default), so the client's
socket timeout (`timeout`, 120 s by default) must exceed the job's barrier
timeout; a timed-out report is retried like any connection error.
"""
from __future__ import annotations

import http.client
import json
import math
import os
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence

__all__ = [
    "Client",
    "Decision",
    "LossweightError",
    "ConnectionFailed",
    "BadRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "Conflict",
    "Gone",
    "PayloadTooLarge",
    "TooManyRequests",
    "ServerError",
    "Unavailable",
    "BarrierTimeout",
]


# ---- errors ----

class LossweightError(Exception):
    """An error answer from lossweightd, or no answer at all.

    status:  the HTTP status (None when the daemon could not be reached)
    code:    the daemon's error code ("invalid", "not_found", "conflict", ...)
    message: the daemon's message
    field:   the request field the error is about ("" or None when none)
    """

    def __init__(self, status: Optional[int], code: str, message: str,
                 field: Optional[str] = None, body: Optional[str] = None):
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.body = body
        where = " (field %s)" % field if field else ""
        super().__init__("%s %s: %s%s" % (status if status is not None else "-", code, message, where))


class ConnectionFailed(LossweightError):
    """The daemon could not be reached (after the retries the call allows)."""


class BadRequest(LossweightError):
    """400: the request is wrong for the job (shape, range, a missing input)."""


class Unauthorized(LossweightError):
    """401: no or an unknown bearer token."""


class Forbidden(LossweightError):
    """403: the token's role or job prefix does not allow the call."""


class NotFound(LossweightError):
    """404: no such job or step."""


class Conflict(LossweightError):
    """409: conflicts with what is stored (another spec, another report body)."""


class Gone(LossweightError):
    """410: the step is no longer held in the job's history."""


class PayloadTooLarge(LossweightError):
    """413: the body is over the daemon's limit."""


class TooManyRequests(LossweightError):
    """429: too far ahead of the job, or too many jobs/connections."""


class ServerError(LossweightError):
    """5xx other than 503 and 504."""


class Unavailable(ServerError):
    """503: the daemon is shutting down (or out of memory)."""


class BarrierTimeout(ServerError):
    """504: the barrier timed out with fewer than min_ranks ranks present."""


_BY_STATUS = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound,
    409: Conflict, 410: Gone, 413: PayloadTooLarge, 429: TooManyRequests,
    503: Unavailable, 504: BarrierTimeout,
}


def _error_from(status: int, body: bytes) -> LossweightError:
    text = body.decode("utf-8", "replace")
    code, message, field = "http_%d" % status, text.strip() or "HTTP %d" % status, None
    try:
        err = json.loads(text)["error"]
        code = err.get("code", code)
        message = err.get("message", message)
        field = err.get("field") or None
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else LossweightError)
    return cls(status, code, message, field, text)


# ---- decisions ----

@dataclass
class Decision:
    """One step's decision as every rank of the job receives it.

    weights: T floats -- loss weights (back-propagate sum_i w_i L_i) or, for
    methods whose output is "grad_coeffs", coefficients c on the per-task
    shared gradients (see GET /v1/methods). None while status is "pending".
    """

    job: str
    step: int
    weights: Optional[List[float]]
    method: Optional[str]
    ranks: Optional[int]
    status: str

    @classmethod
    def from_json(cls, doc: Dict[str, Any]) -> "Decision":
        w = doc.get("weights")
        return cls(job=doc.get("job"), step=doc.get("step"),
                   weights=[float(x) for x in w] if w is not None else None,
                   method=doc.get("method"), ranks=doc.get("ranks"),
                   status=doc.get("status", "decided" if w is not None else "pending"))


# ---- the client ----

def _floats(name: str, xs: Iterable[Any]) -> List[float]:
    out = []
    for x in xs:
        v = float(x)  # works for floats, ints, numpy scalars, 0-d tensors
        if not math.isfinite(v):
            raise ValueError("%s: %r is not a finite number" % (name, v))
        out.append(v)
    return out


def _matrix(name: str, rows: Iterable[Iterable[Any]]) -> List[List[float]]:
    return [_floats(name, row) for row in rows]


_RETRYABLE = (ConnectionError, http.client.HTTPException, socket.timeout, OSError)
# What a reused connection the daemon closed meanwhile raises.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
          ConnectionAbortedError, http.client.BadStatusLine)


class Client:
    """A client of one lossweightd.

    url:     the daemon's base URL, "http://127.0.0.1:7070" or, for a daemon
             with --tls-cert, "https://..."; a path prefix is kept, for a
             daemon behind a reverse proxy
    token:   a bearer token, sent as "Authorization: Bearer <token>"; None
             (the default): $LOSSWEIGHT_TOKEN if set, else none; "": none
    cafile:  https: a PEM file of the CA certificate(s) to verify the daemon
             with, instead of the system's (e.g. its self-signed certificate)
    timeout: socket timeout in seconds for every call; keep it above the
             jobs' barrier_timeout_ms (see the module doc)
    retries: how many times a retryable call is sent again (so at most
             retries + 1 attempts); backoff starts at `backoff` seconds and
             doubles up to `max_backoff`
    """

    def __init__(self, url: str, token: Optional[str] = None, timeout: float = 120.0,
                 retries: int = 6, backoff: float = 0.05, max_backoff: float = 2.0,
                 cafile: Optional[str] = None):
        u = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if u.scheme not in ("http", "https"):
            raise ValueError("url must be http:// or https://, not %r" % url)
        if not u.hostname:
            raise ValueError("url has no host: %r" % url)
        self.url = url
        self._https = u.scheme == "https"
        self._host = u.hostname
        self._port = u.port or (443 if self._https else 80)
        self._prefix = u.path.rstrip("/")
        if token is None:
            token = os.environ.get("LOSSWEIGHT_TOKEN") or None
        self.token = token or None
        if cafile is not None and not self._https:
            raise ValueError("cafile is for https:// URLs, not %r" % url)
        # one context for every connection (and thread): it loads the CAs once
        self._ssl = ssl.create_default_context(cafile=cafile) if self._https else None
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._local = threading.local()
        self._methods: Optional[Dict[str, Dict[str, Any]]] = None

    # -- connection --

    def _conn(self):
        loc = self._local
        c = getattr(loc, "conn", None)
        if c is not None and getattr(loc, "pid", None) == os.getpid():
            return c, True
        if self._https:
            c = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                            context=self._ssl)
        else:
            c = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        loc.conn, loc.pid = c, os.getpid()
        return c, False

    def _drop(self) -> None:
        c = getattr(self._local, "conn", None)
        self._local.conn = None
        if c is not None and getattr(self._local, "pid", None) == os.getpid():
            try:
                c.close()
            except OSError:
                pass

    def close(self) -> None:
        """Close this thread's connection (a later call reopens one)."""
        self._drop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _once(self, verb: str, path: str, body: Optional[bytes]):
        conn, reused = self._conn()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        try:
            try:
                conn.request(verb, self._prefix + path, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError) as sent:
                # The daemon answers some requests from their headers alone
                # (413 over --max-body, 401/403) and closes without reading
                # the body: its answer is still there to read. A connection
                # that was simply closed (stale) has none: the send error
                # stands, and is handled as before.
                try:
                    resp = conn.getresponse()
                except Exception:
                    raise sent from None
            else:
                resp = conn.getresponse()
            data = resp.read()
        except BaseException as e:
            self._drop()
            e._lw_reused = reused  # type: ignore[attr-defined]
            raise
        if resp.will_close:
            self._drop()
        return resp.status, data, resp.getheader("Content-Type", "")

    def _request(self, verb: str, path: str, doc: Any = None, *, retry: bool = True,
                 raw: bool = False):
        body = None
        if doc is not None:
            body = json.dumps(doc, allow_nan=False, separators=(",", ":")).encode()
        retries = self.retries if retry else 0
        attempt = 0
        stale_retried = False
        delay = self.backoff
        last: Optional[BaseException] = None
        while True:
            try:
                status, data, ctype = self._once(verb, path, body)
            except ssl.SSLCertVerificationError as e:
                # not a transient failure: no retry
                raise ConnectionFailed(None, "tls_verify_failed", "%s %s: %s" % (
                    verb, self.url + path, e)) from None
            except _RETRYABLE as e:
                last = e
                # A kept-alive connection the daemon has closed (idle) fails
                # before the request reaches it: one immediate retry on a
                # fresh connection, for every call, not counted as a retry.
                if (getattr(e, "_lw_reused", False) and isinstance(e, _STALE)
                        and not stale_retried):
                    stale_retried = True
                    continue
                if attempt >= retries:
                    break
                attempt += 1
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            if status == 503 and attempt < retries:
                last = _error_from(status, data)
                attempt += 1
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)
                continue
            if status >= 400:
                raise _error_from(status, data)
            if raw:
                return data.decode("utf-8")
            if not data:
                return None
            try:
                return json.loads(data)
            except ValueError:
                raise LossweightError(status, "bad_response",
                                      "not JSON (%s): %.200r" % (ctype, data))
        if isinstance(last, LossweightError):
            raise last
        raise ConnectionFailed(None, "connection_failed",
                               "%s %s: %s: %s" % (verb, self.url + path, type(last).__name__, last))

    @staticmethod
    def _q(job: str) -> str:
        return urllib.parse.quote(job, safe="")

    # -- jobs --

    def create_job(self, job: str, tasks: Sequence[Any], method: str,
                   params: Optional[Dict[str, Any]] = None, world_size: int = 1,
                   sync: str = "barrier", **spec: Any) -> Dict[str, Any]:
        """PUT /v1/jobs/{job}: create a job (the same spec again is fine, any
        rank may call it; a different spec raises Conflict). `tasks` are
        names or objects such as {"name": "ctr", "class_freq": [0.97, 0.03]};
        more spec fields (seed, barrier_timeout_ms, min_ranks) go in **spec.
        Returns the daemon's answer (the job with defaults filled in)."""
        doc: Dict[str, Any] = {"tasks": list(tasks), "method": method}
        if params:
            doc["params"] = dict(params)
        doc["world_size"] = int(world_size)
        doc["sync"] = sync
        doc.update(spec)
        return self._request("PUT", "/v1/jobs/" + self._q(job), doc)

    def job(self, job: str) -> Dict[str, Any]:
        """GET /v1/jobs/{job}: spec, status, latest weights, method state."""
        return self._request("GET", "/v1/jobs/" + self._q(job))

    def jobs(self) -> Any:
        """GET /v1/jobs: every job with a one-line status."""
        return self._request("GET", "/v1/jobs")

    def delete_job(self, job: str) -> None:
        """DELETE /v1/jobs/{job}: remove the job and its state."""
        self._request("DELETE", "/v1/jobs/" + self._q(job), retry=False)

    # -- steps --

    def report(self, job: str, step: int, losses: Sequence[Any], rank: int = 0,
               grad_norms: Optional[Sequence[Any]] = None,
               gram: Optional[Sequence[Sequence[Any]]] = None,
               epoch: Optional[int] = None, samples: Optional[float] = None,
               wait: bool = True, *, losses_after: Optional[Sequence[Any]] = None) -> Decision:
        """POST /v1/jobs/{job}/reports: this rank's inputs for `step`.

        In barrier mode the call returns when every rank has reported the
        step, with the decision all ranks get. wait=False asks the daemon not
        to hold the answer (?wait_ms=0): the Decision is then the step's
        decision if it is already decided, else status "pending" with no
        weights (read it later with step()). Retried after connection errors:
        the daemon answers a repeated identical report like the first."""
        doc: Dict[str, Any] = {"rank": int(rank), "step": int(step)}
        if epoch is not None:
            doc["epoch"] = int(epoch)
        if losses is not None:
            doc["losses"] = _floats("losses", losses)
        if grad_norms is not None:
            doc["grad_norms"] = _floats("grad_norms", grad_norms)
        if gram is not None:
            doc["gram"] = _matrix("gram", gram)
        if losses_after is not None:
            doc["losses_after"] = _floats("losses_after", losses_after)
        if samples is not None:
            doc["samples"] = float(samples)
        path = "/v1/jobs/%s/reports" % self._q(job)
        if not wait:
            path += "?wait_ms=0"
        out = self._request("POST", path, doc)
        out.setdefault("job", job)
        return Decision.from_json(out)

    def weights(self, job: str) -> Decision:
        """GET /v1/jobs/{job}/weights: the latest decision."""
        out = self._request("GET", "/v1/jobs/%s/weights" % self._q(job))
        out.setdefault("job", job)
        return Decision.from_json(out)

    def step(self, job: str, n: int, wait_ms: Optional[int] = None) -> Decision:
        """GET /v1/jobs/{job}/steps/{n}: a decided step; with wait_ms, wait up
        to that long for it to be decided (status "pending" if it is not)."""
        path = "/v1/jobs/%s/steps/%d" % (self._q(job), int(n))
        if wait_ms is not None:
            path += "?wait_ms=%d" % int(wait_ms)
        out = self._request("GET", path)
        out.setdefault("job", job)
        return Decision.from_json(out)

    def history(self, job: str, start: Optional[int] = None,
                limit: Optional[int] = None) -> List[Dict[str, Any]]:
        """GET /v1/jobs/{job}/history: decided steps from step `start` on,
        at most `limit` of them (the daemon caps a page), oldest first. Each
        entry has "step", "input" (the mean of the ranks' reports exactly as
        the method got it: feed it to `lossweight replay`), "weights",
        "ranks". See iter_history() for every step."""
        q = {}
        if start is not None:
            q["from"] = int(start)
        if limit is not None:
            q["limit"] = int(limit)
        path = "/v1/jobs/%s/history" % self._q(job)
        if q:
            path += "?" + urllib.parse.urlencode(q)
        out = self._request("GET", path)
        if isinstance(out, dict):
            for key in ("steps", "history", "items"):
                if isinstance(out.get(key), list):
                    return out[key]
        return out

    def iter_history(self, job: str, start: int = 0, page: int = 1000):
        """Every held decided step from `start` on, page by page."""
        nxt = start
        while True:
            items = self.history(job, start=nxt, limit=page)
            if not items:
                return
            for it in items:
                yield it
            last = items[-1]["step"]
            if last < nxt:
                return
            nxt = last + 1

    # -- state --

    def export_state(self, job: str, decided_only: bool = False) -> Dict[str, Any]:
        """GET /v1/jobs/{job}/state: the whole job as one JSON document (spec,
        method state, position). Keep it with the model's checkpoint.
        decided_only: as of the last decided step (no open steps' reports,
        ranks wound back to it), which is what a checkpoint the trainer
        resumes from wants: the resumed ranks post the later steps again."""
        path = "/v1/jobs/%s/state" % self._q(job)
        return self._request("GET", path + ("?decided_only=1" if decided_only else ""))

    def restore_state(self, job: str, doc: Dict[str, Any]) -> Dict[str, Any]:
        """PUT /v1/jobs/{job}/state: put the job back where `doc` was taken
        (creating it, or replacing what the daemon holds)."""
        return self._request("PUT", "/v1/jobs/%s/state" % self._q(job), doc)

    # -- the daemon --

    def methods(self) -> List[Dict[str, Any]]:
        """GET /v1/methods: every method (name, summary, inputs,
        optional_inputs, output, params, state), as the daemon lists them."""
        out = self._request("GET", "/v1/methods")
        ms = out["methods"] if isinstance(out, dict) else out
        self._methods = {m["name"]: m for m in ms}
        return ms

    def method(self, name: str) -> Dict[str, Any]:
        """One method's entry of methods(), fetched once per Client."""
        if self._methods is None:
            self.methods()
        assert self._methods is not None
        if name not in self._methods:
            raise NotFound(None, "not_found", "the daemon has no method %r" % name, "method")
        return self._methods[name]

    def healthz(self) -> Any:
        """GET /healthz."""
        return self._request("GET", "/healthz", raw=True)

    def metrics(self) -> str:
        """GET /metrics: Prometheus text."""
        return self._request("GET", "/metrics", raw=True)
