"""Load (and fault) run: N simulated radiologists against `make serve` on PostgreSQL.

    .venv/bin/python loadtest/run.py --users 20 --duration 60            # normal run
    .venv/bin/python loadtest/run.py --users 20 --duration 60 --fault    # restart PostgreSQL

Steps: prepare a fresh database (loadtest/prepare.py), start `make serve` on a free port
of 127.0.0.1, wait for /healthz, let every simulated radiologist log in and work through
take next -> open -> recommend (a few form changes) -> decide (accept) -> reply -> finalize
-> print until the time is up, stop the server, then check the database against every
acknowledged decision and reply (loadtest/check.py). With --fault, PostgreSQL is restarted
(pg_ctlcluster) during the load: answers during the outage must be 503 with the Swedish
page, and the application must recover by itself.

The driver uses the standard library only (threads, http.client, a cookie jar per user);
traffic goes to 127.0.0.1 only. Exit status 0 when every check passed, 1 otherwise.
"""

# Load-test tooling, not application code: a seeded PRNG for reproducible simulated users,
# and subprocesses (make, gunicorn, pg_ctlcluster, pg_isready) run with fixed arguments.
# ruff: noqa: S311, S603, S607

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

LOADTEST_DIR = Path(__file__).resolve().parent
PROJECT_DIR = LOADTEST_DIR.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/remissprio_load"
HOST = "127.0.0.1"
STEPS = [
    "login_page",
    "login",
    "worklist",
    "take_next",
    "open",
    "recommend",
    "decide",
    "reply_open",
    "finalize",
    "print",
]
# What the application answers while the database is away (templates/503.html).
SWEDISH_503 = "tillfälligt otillgänglig"
LOGIN_PHASE_LIMIT = 180.0  # seconds for all simulated users to log in before the load starts
RETRY_PAUSE = 0.2  # seconds between retries of a step answered with 503 (fault mode)

REFERRAL_PATH = re.compile(r"/remiss/(\d+)/")
PRINT_PATH = re.compile(r"/remiss/(\d+)/svar/(\d+)/utskrift/")


# --- HTTP with a cookie jar -------------------------------------------------------------


@dataclass
class Response:
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    body: str
    location: str
    error: str = ""


@dataclass
class Sample:
    step: str
    status: int
    start: float  # seconds since the load started
    seconds: float
    swedish_503: bool = False


class Browser:
    """One simulated radiologist's HTTP client: its own cookies, a new connection per request."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: list[tuple[str, str]] | None = None, **headers: str
    ) -> Response:
        send = {
            "Host": f"{HOST}:{self.port}",
            "User-Agent": "remissprio-loadtest",
            "Accept": "text/html",
            "Connection": "close",
        }
        send.update({name.replace("_", "-"): value for name, value in headers.items()})
        if self.cookies:
            send["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            send["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        try:
            connection.request(method, path, body=body, headers=send)
            answer = connection.getresponse()
            data = answer.read()
            for header in answer.headers.get_all("Set-Cookie") or []:
                self._store_cookie(header)
            location = urlsplit(answer.getheader("Location") or "")
            where = location.path + (f"?{location.query}" if location.query else "")
            return Response(answer.status, data.decode("utf-8", "replace"), where)
        except (OSError, http.client.HTTPException) as error:
            return Response(0, "", "", error=f"{type(error).__name__}: {error}")
        finally:
            connection.close()

    def _store_cookie(self, header: str) -> None:
        cookie = SimpleCookie()
        cookie.load(header)
        for name, morsel in cookie.items():
            expired = morsel["max-age"] == "0" or "1970" in morsel["expires"]
            if expired or not morsel.value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = morsel.value


class Forms(HTMLParser):
    """The fields a browser would submit for each form of a page (and inputs outside forms)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: dict[str, list[tuple[str, str]]] = {}
        self.loose: dict[str, str] = {}
        self._form: list[tuple[str, str]] | None = None
        self._select: dict | None = None
        self._textarea: dict | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self._form = []
            self.forms[a.get("id") or a.get("action") or f"form-{len(self.forms)}"] = self._form
        elif "disabled" in a or not a.get("name") and tag != "option":
            return
        elif tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind in {"submit", "button", "image", "reset", "file"}:
                return
            if kind in {"checkbox", "radio"} and "checked" not in a:
                return
            value = a.get("value") or ("on" if kind in {"checkbox", "radio"} else "")
            self._add(a["name"], value)
        elif tag == "select":
            self._select = {"name": a["name"], "multiple": "multiple" in a, "chosen": []}
        elif tag == "option" and self._select is not None:
            value = a.get("value") or ""
            self._select.setdefault("first", value)
            if "selected" in a:
                self._select["chosen"].append(value)
        elif tag == "textarea":
            self._textarea = {"name": a["name"], "text": []}

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea["text"].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select" and self._select is not None:
            chosen = self._select["chosen"]
            if not chosen and not self._select["multiple"] and "first" in self._select:
                chosen = [self._select["first"]]
            for value in chosen:
                self._add(self._select["name"], value)
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            text = "".join(self._textarea["text"])
            # A browser drops the newline right after <textarea>.
            self._add(self._textarea["name"], text.removeprefix("\r").removeprefix("\n"))
            self._textarea = None

    def _add(self, name: str, value: str) -> None:
        if self._form is not None:
            self._form.append((name, value))
        else:
            self.loose[name] = value

    def csrf(self) -> str | None:
        for fields in self.forms.values():
            for name, value in fields:
                if name == "csrfmiddlewaretoken":
                    return value
        return None


def overlay(fields: list[tuple[str, str]], facts: dict) -> list[tuple[str, str]]:
    """The form with the radiologist's changes: scalars replaced, checkbox lists extended."""
    result = [(name, value) for name, value in fields if not isinstance(facts.get(name), str)]
    for name, value in facts.items():
        if isinstance(value, str):
            result.append((name, value))
        else:
            present = {v for n, v in result if n == name}
            result.extend((name, item) for item in value if item not in present)
    return result


# --- The run's shared record ----------------------------------------------------------


@dataclass
class Record:
    started: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    replies: list[dict] = field(default_factory=list)
    unacknowledged_decisions: set[int] = field(default_factory=set)
    unexpected: list[str] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)
    exhausted_users: int = 0
    health: list[tuple[float, int]] = field(default_factory=list)
    database: list[tuple[float, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    logged_in: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    go: threading.Event = field(default_factory=threading.Event)
    # End of the load window (seconds after its start); the fault run may extend it.
    deadline: float = 0.0

    def start_load(self) -> float:
        """Start the load window now; what happened before (logging in) gets negative times."""
        with self.lock:
            shift = time.monotonic() - self.started
            self.started += shift
            for sample in self.samples:
                sample.start -= shift
        self.go.set()
        return shift

    def now(self) -> float:
        return time.monotonic() - self.started

    def add(self, sample: Sample, error: str = "") -> None:
        with self.lock:
            self.samples.append(sample)
            if error:
                self.transport_errors.append(f"{sample.step} at {sample.start:.2f}s: {error}")

    def note(self, message: str) -> None:
        with self.lock:
            self.unexpected.append(f"{self.now():.2f}s {message}")


class StopUser(Exception):
    """The simulated radiologist stops (time is up, or nothing left to take)."""


class Radiologist:
    def __init__(
        self, username: str, password: str, port: int, record: Record, args, seed: int
    ) -> None:
        self.username = username
        self.password = password
        self.browser = Browser(port, args.timeout)
        self.record = record
        self.think = args.think
        self.double_submit = args.double_submit
        self.retry = args.fault  # in a normal run a 503 is a failure, not something to wait out
        self.rng = random.Random(seed)
        self.csrf = ""
        self.logged_in = False
        self.refused = 0

    # One request, timed and recorded; 503 (and no answer) retried in fault mode.
    def call(self, step: str, method: str, path: str, form=None, **headers) -> Response:
        self.refused = 0  # attempts of this call answered with 503 or not at all
        while True:
            if self.record.now() >= self.deadline:
                raise StopUser
            response = self._send(step, method, path, form, **headers)
            if response.status not in (0, 503) or not self.retry:
                self._after(step, response)
                return response
            self.refused += 1
            time.sleep(RETRY_PAUSE)

    def submit_twice(self, step: str, path: str, form) -> list[Response]:
        """A double click: the same form POSTed twice at the same moment (--double-submit)."""
        if self.record.now() >= self.deadline:
            raise StopUser
        responses: list[Response] = []
        barrier = threading.Barrier(2)

        def one() -> None:
            barrier.wait()
            responses.append(self._send(step, "POST", path, form))

        threads = [threading.Thread(target=one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for response in responses:
            self._after(step, response)
        return responses

    def _send(self, step: str, method: str, path: str, form=None, **headers) -> Response:
        start = self.record.now()
        t0 = time.perf_counter()
        response = self.browser.request(method, path, form, **headers)
        seconds = time.perf_counter() - t0
        swedish = response.status == 503 and SWEDISH_503 in response.body.casefold()
        self.record.add(Sample(step, response.status, start, seconds, swedish), response.error)
        return response

    def _after(self, step: str, response: Response) -> None:
        if response.status == 302 and response.location.startswith("/login/"):
            self.logged_in = False
            self.record.note(f"{self.username} {step}: sent to the login page")
            raise _Relogin
        if self.think:
            time.sleep(self.rng.uniform(0.5, 1.5) * self.think)

    def page(self, response: Response) -> Forms:
        forms = Forms(response.body)
        self.csrf = forms.csrf() or self.csrf
        return forms

    def expect(self, step: str, response: Response, status: int, location=None) -> bool:
        if isinstance(location, re.Pattern):
            where_ok = location.fullmatch(response.location) is not None
        else:
            where_ok = location is None or response.location == location
        if response.status == status and where_ok:
            return True
        detail = response.error or response.body[:200].replace("\n", " ")
        self.record.note(f"{self.username} {step}: {response.status} {response.location} {detail}")
        return False

    @property
    def deadline(self) -> float:
        return self.record.deadline if self.record.go.is_set() else LOGIN_PHASE_LIMIT

    def run(self) -> None:
        # Everybody logs in first (the production password hasher is slow on purpose); the
        # load window of --duration seconds starts when all are in.
        try:
            self.login()
        except (StopUser, _Relogin):
            pass
        finally:
            self.record.logged_in.release()
        self.record.go.wait()
        try:
            while self.record.now() < self.deadline:
                try:
                    if not self.logged_in:
                        self.login()
                    self.triage_one()
                except _Relogin:
                    continue
        except StopUser:
            return

    def login(self) -> None:
        self.page(self.call("login_page", "GET", "/login/"))
        response = self.call(
            "login",
            "POST",
            "/login/",
            [("csrfmiddlewaretoken", self.csrf), ("username", self.username)]
            + [("password", self.password)],
        )
        if not self.expect("login", response, 302, "/"):
            raise StopUser  # wrong credentials would soon lock the account (axes)
        self.logged_in = True
        self.page(self.call("worklist", "GET", "/"))

    def triage_one(self) -> None:
        response = self.call(
            "take_next", "POST", "/ta-nasta/", [("csrfmiddlewaretoken", self.csrf)]
        )
        if response.status == 302 and response.location == "/":
            with self.record.lock:
                self.record.exhausted_users += 1
            raise StopUser
        if not self.expect("take_next", response, 302, REFERRAL_PATH):
            return
        pk = int(REFERRAL_PATH.fullmatch(response.location).group(1))
        path = f"/remiss/{pk}/"

        response = self.call("open", "GET", path)
        if not self.expect("open", response, 200):
            return
        fields = self.page(response).forms.get("triage-form", [])

        facts: dict = {}
        for stage in self.form_changes():
            facts.update(stage)
            response = self.call(
                "recommend",
                "POST",
                f"{path}forslag/",
                overlay(fields, facts),
                HX_Request="true",
                HX_Target="recommendation",
            )
            if not self.expect("recommend", response, 200):
                return
            shown = Forms(response.body).loose.get("shown")
            if shown is None:
                self.record.note(f"{self.username} recommend {pk}: no id_shown in the fragment")
                return
            facts["shown"] = shown

        decided = self.decide(pk, path, overlay(fields, facts) + [("accept", "1")], shown)
        if not decided:
            return

        response = self.call("reply_open", "GET", f"{path}svar/")
        if not self.expect("reply_open", response, 200):
            return
        reply = dict(self.page(response).forms.get("reply-form", []))
        text = reply.get("text", "").strip() or "Remissen är bedömd enligt rutinen (lasttest)."
        form = [("csrfmiddlewaretoken", self.csrf), ("template", reply.get("template", ""))]
        form += [("text", text), ("finalize", "1")]
        printed = self.finalize(pk, f"{path}svar/", form, text)
        if printed:
            self.expect("print", self.call("print", "GET", printed), 200)

    def decide(self, pk: int, path: str, form: list[tuple[str, str]], shown: str) -> bool:
        """POST the decision; True when the referral has a stored decision to reply to."""
        if self.rng.random() < self.double_submit:
            responses = self.submit_twice("decide", path, form)
            retried = False
        else:
            responses = [self.call("decide", "POST", path, form)]
            retried = self.refused > 0
        acknowledged = [r for r in responses if r.status == 302 and r.location == f"{path}svar/"]
        with self.record.lock:
            for _response in acknowledged:  # two would be a decision taken twice
                self.record.decisions.append(
                    {"referral": pk, "user": self.username, "shown": shown}
                )
        if len(responses) == 2:
            # The duplicate of a double click may be refused (409: the referral changed).
            for response in responses:
                if response not in acknowledged and response.status not in (0, 409, 503):
                    self.expect("decide", response, 302, f"{path}svar/")
            if not acknowledged and any(r.status in (0, 503) for r in responses):
                with self.record.lock:
                    self.record.unacknowledged_decisions.add(pk)
            return bool(acknowledged)
        response = responses[0]
        if acknowledged:
            return True
        if retried and response.status == 409:
            # The first attempt was stored but its answer lost in the outage: the retry is
            # refused as stale. Not acknowledged; the reply page tells whether it is stored.
            with self.record.lock:
                self.record.unacknowledged_decisions.add(pk)
            return True
        self.expect("decide", response, 302, f"{path}svar/")
        return False

    def finalize(self, pk: int, path: str, form: list[tuple[str, str]], text: str) -> str | None:
        """POST the final reply; the print view's path when acknowledged."""
        if self.rng.random() < self.double_submit:
            responses = self.submit_twice("finalize", path, form)
        else:
            responses = [self.call("finalize", "POST", path, form)]
        acknowledged = {
            r.location: int(PRINT_PATH.fullmatch(r.location).group(2))
            for r in responses
            if r.status == 302 and PRINT_PATH.fullmatch(r.location)
        }
        with self.record.lock:
            for reply_pk in acknowledged.values():  # two different ones: a duplicate reply
                self.record.replies.append(
                    {"referral": pk, "reply": reply_pk, "user": self.username, "text": text}
                )
        for response in responses:
            if response.location not in acknowledged and not (
                len(responses) == 2 and 400 <= response.status < 500
            ):
                self.expect("finalize", response, 302, PRINT_PATH)
        return next(iter(acknowledged), None)

    def form_changes(self) -> list[dict]:
        """What the radiologist types, change by change (each one posts to the endpoint)."""
        rng = self.rng
        stages = [{"pain_weeks": str(rng.choice([1, 3, 6, 8, 12, 20]))}]
        second: dict = {"questions": [rng.choice(["degenerative", "compression", "metastasis"])]}
        if rng.random() < 0.5:
            second["red_flags"] = [
                rng.choice(["night_pain", "onset_after_55", "prior_cancer", "weight_loss"])
            ]
        if rng.random() < 0.03:
            second["emergency_signs"] = ["cauda_equina"]
        stages.append(second)
        if rng.random() < 0.5:
            stages.append(
                {
                    "radicular": "on",
                    "treatment_weeks": str(rng.choice([2, 6, 8])),
                    "improved": rng.choice(["yes", "no"]),
                }
            )
        return stages


class _Relogin(Exception):
    pass


# --- Server, database and fault -------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_server(args, port: int, log_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DATABASE_URL"}}
    env.setdefault("SECRET_KEY", "loadtest-" + os.urandom(24).hex())
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    if args.server == "make":
        command = ["make", "--no-print-directory", "-C", str(PROJECT_DIR), "serve"]
        command += [f"SERVE_DATABASE_URL={args.database_url}", f"HOST={HOST}", f"PORT={port}"]
    else:  # the same as `make serve` without make (and without its pip/migrate steps)
        env.update(
            DATABASE_URL=args.database_url,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            SECURE_SSL_REDIRECT="0",
            SECURE_COOKIES="0",
        )
        subprocess.run(
            [args.python, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=PROJECT_DIR,
            env=env,
            check=True,
        )
        gunicorn = str(Path(args.python).parent / "gunicorn")
        command = [gunicorn, "config.wsgi", "--worker-class", "gthread", "--workers", "2"]
        command += ["--threads", "4", "--bind", f"{HOST}:{port}", "--access-logfile", "-"]
        command += ["--max-requests", "2000", "--max-requests-jitter", "200"]
    process = subprocess.Popen(
        command,
        cwd=PROJECT_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, stopped as a whole at the end
    )
    process.log = log  # type: ignore[attr-defined]
    return process


def wait_healthy(process: subprocess.Popen, port: int, seconds: float) -> float:
    started = time.monotonic()
    browser = Browser(port, 2.0)
    while time.monotonic() - started < seconds:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        if browser.request("GET", "/healthz").status == 200:
            return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"/healthz not 200 within {seconds:.0f} s")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    process.log.close()  # type: ignore[attr-defined]


def pg_version(args) -> str:
    if args.pg_version:
        return args.pg_version
    versions = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])
    if not versions:
        raise RuntimeError("no cluster in /etc/postgresql")
    return versions[-1]


def pg_ready(database_url: str) -> bool:
    parts = urlsplit(database_url)
    command = ["pg_isready", "-q", "-h", parts.hostname or HOST, "-p", str(parts.port or 5432)]
    return subprocess.run(command, check=False).returncode == 0


def restart_postgres(args, record: Record, fault: dict) -> None:
    """At --fault-at seconds restart the cluster, probing with pg_isready every 50 ms when it
    stopped and when it accepted connections again (pg_ctlcluster itself returns later).
    The load then goes on for at least --max-recovery seconds, to see the recovery."""
    time.sleep(max(0.0, args.fault_at - record.now()))
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", pg_version(args), "main", "restart"]
    fault["command"] = " ".join(command)
    hold = record.deadline
    record.deadline = float("inf")  # nobody stops while the database is away
    fault["restart_started_s"] = started = record.now()
    restart = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    refused = back = None
    while record.now() - started < 120:
        t, ready = record.now(), pg_ready(args.database_url)
        with record.lock:
            record.database.append((t, ready))
        if not ready and refused is None:
            refused = t
        if ready and (refused is not None or restart.poll() is not None):
            back = t
            break
        time.sleep(0.05)
    output, _ = restart.communicate(timeout=120)
    fault["restart_returned_s"] = record.now()
    fault["restart_status"] = restart.returncode
    fault["restart_output"] = (output or "").strip()[-500:]
    fault["database_refused_s"] = refused
    fault["database_back_s"] = back
    record.deadline = max(hold, (back or record.now()) + args.max_recovery)


def poll_health(port: int, record: Record, stop: threading.Event) -> None:
    browser = Browser(port, 2.0)
    while not stop.is_set():
        start = record.now()
        status = browser.request("GET", "/healthz").status
        with record.lock:
            record.health.append((start, status))
        stop.wait(0.1)


# --- Statistics ---------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def summarise(record: Record, elapsed: float) -> dict:
    steps = {}
    for step in [*STEPS, "total"]:
        samples = [s for s in record.samples if step in ("total", s.step)]
        answered = [s.seconds for s in samples if 0 < s.status < 500]
        classes = {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0, "no_answer": 0}
        for s in samples:
            classes["no_answer" if s.status == 0 else f"{s.status // 100}xx"] += 1
        in_window = sum(s.start >= 0 for s in samples)
        steps[step] = {
            "requests": len(samples),
            "per_second": round(in_window / elapsed, 2) if elapsed else None,
            "p50_ms": _ms(percentile(answered, 0.50)),
            "p95_ms": _ms(percentile(answered, 0.95)),
            "max_ms": _ms(max(answered, default=None)),
            **classes,
        }
    statuses: dict[str, int] = {}
    for s in record.samples:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    return {
        "steps": steps,
        "statuses": dict(sorted(statuses.items())),
        "throughput": {
            "requests_per_s": round(sum(s.start >= 0 for s in record.samples) / elapsed, 2),
            "decisions_per_s": round(len(record.decisions) / elapsed, 2),
            "final_replies_per_s": round(len(record.replies) / elapsed, 2),
            "decisions_per_user_minute": None,
        },
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def fault_summary(record: Record, fault: dict) -> dict:
    down = fault.get("restart_started_s")
    back = fault.get("database_back_s")
    errors = [s for s in record.samples if s.status == 503]
    out = dict(fault)
    out["user_503"] = len(errors)
    out["user_503_swedish_page"] = sum(s.swedish_503 for s in errors)
    out["user_500"] = sum(s.status == 500 for s in record.samples)
    out["first_503_s"] = round(min(s.start for s in errors), 3) if errors else None
    out["last_503_s"] = round(max(s.start + s.seconds for s in errors), 3) if errors else None
    if back is not None:
        db_steps = set(STEPS) - {"login_page"}
        after = [
            s.start + s.seconds
            for s in record.samples
            if s.start >= back and 0 < s.status < 500 and s.step in db_steps
        ]
        first_ok = min(after, default=None)
        out["recovery_s"] = None if first_ok is None else round(first_ok - back, 3)
        out["user_503_after_database_back"] = sum(s.start >= back for s in errors)
        healthy = [t for t, status in record.health if t >= back and status == 200]
        out["healthz_recovery_s"] = round(min(healthy) - back, 3) if healthy else None
        out["outage_s"] = round(back - down, 3) if down is not None else None
    health_503 = [t for t, status in record.health if status == 503]
    out["healthz_503"] = len(health_503)
    out["healthz_unanswered_in_2s"] = sum(status == 0 for _, status in record.health)
    for key in ("restart_started_s", "database_refused_s", "restart_returned_s", "database_back_s"):
        if out.get(key) is not None:
            out[key] = round(out[key], 3)
    return out


def print_table(result: dict) -> None:
    print(
        f"\n== {result['mode']} run: {result['users']} users, {result['elapsed_s']:.1f} s of load "
        f"after {result['login_phase_s']:.1f} s logging in (server: {result['server']}; "
        f"{result['machine']['cpus']} CPUs, load average {result['machine']['loadavg_before'][0]}"
        f" before, {result['machine']['loadavg_after'][0]} after)"
    )
    header = f"{'step':<11}{'req':>7}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
    header += f"{'2xx':>7}{'3xx':>7}{'4xx':>6}{'5xx':>6}{'none':>6}"
    print(header)
    for step, row in result["summary"]["steps"].items():
        if not row["requests"]:
            continue
        print(
            f"{step:<11}{row['requests']:>7}{row['per_second']:>8}"
            f"{_cell(row['p50_ms'])}{_cell(row['p95_ms'])}{_cell(row['max_ms'])}"
            f"{row['2xx']:>7}{row['3xx']:>7}{row['4xx']:>6}{row['5xx']:>6}{row['no_answer']:>6}"
        )
    t = result["summary"]["throughput"]
    print(
        f"throughput: {t['requests_per_s']} requests/s, {t['decisions_per_s']} decisions/s, "
        f"{t['final_replies_per_s']} final replies/s; statuses {result['summary']['statuses']}"
    )
    print(
        "(latency over answered requests with status < 500; req/s over the load window, "
        "login_page/login/worklist mostly before it)"
    )
    if result.get("fault"):
        f = result["fault"]
        print(
            f"fault: restart at {f.get('restart_started_s')} s, connections refused from "
            f"{f.get('database_refused_s')} s, database back at {f.get('database_back_s')} s "
            f"(outage {f.get('outage_s')} s); user 503: "
            f"{f['user_503']} ({f['user_503_swedish_page']} with the Swedish page), 500: "
            f"{f['user_500']}; first success {f.get('recovery_s')} s after the database was "
            f"back (healthz {f.get('healthz_recovery_s')} s); 503 started after it was back: "
            f"{f.get('user_503_after_database_back')}"
        )
    counts = result.get("database", {}).get("counts", {})
    if counts:
        print("database: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for check in result["checks"]:
        mark = "ok  " if check["ok"] else "FAIL"
        print(f"  {mark} {check['name']}: {check['what']} ({check.get('checked', '-')})")
        for example in check.get("examples", [])[:5]:
            print(f"         {example}")
    print(f"result: {'PASS' if result['ok'] else 'FAIL'}  ({result['results_dir']})")


def _cell(value: float | None) -> str:
    return f"{'-' if value is None else value:>9}"


# --- Main ---------------------------------------------------------------------------------


def run_helper(args, script: str, *extra: str) -> dict:
    output = args.results_dir / f"{script}.json"
    command = [args.python, str(LOADTEST_DIR / f"{script}.py"), *extra, "--output", str(output)]
    done = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True, check=False)
    if not output.exists():
        raise RuntimeError(f"{script}.py failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(output.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument("--fault", action="store_true", help="restart PostgreSQL during the load")
    parser.add_argument("--fault-at", type=float, help="seconds into the load (default: 1/3)")
    parser.add_argument("--max-recovery", type=float, default=5.0, help="seconds allowed")
    parser.add_argument(
        "--referrals", type=int, help="new referrals (default: 10 per user-second, at least 300)"
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--server", choices=["make", "gunicorn"], default="make")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--think", type=float, default=0.0, help="mean pause after each step, s")
    parser.add_argument(
        "--double-submit",
        type=float,
        default=0.0,
        help="fraction of decisions and replies POSTed twice at once, as by a double click",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, s")
    parser.add_argument("--pg-version", help="cluster version for pg_ctlcluster")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--python", default=_default_python())
    parser.add_argument("--results", default=str(LOADTEST_DIR / "results"))
    args = parser.parse_args(argv)
    if urlsplit(args.database_url).hostname not in {"127.0.0.1", "localhost"}:
        parser.error("--database-url must point at a local PostgreSQL (it is dropped)")
    if args.fault_at is None:
        args.fault_at = args.duration / 3
    if args.fault and shutil.which("pg_ctlcluster") is None:
        parser.error("--fault needs pg_ctlcluster (Debian's postgresql-common)")
    mode = "fault" if args.fault else "normal"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.results_dir = Path(args.results) / f"{stamp}-{mode}-{args.users}x{args.duration:g}s"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    referrals = args.referrals or max(300, int(args.users * args.duration * 10))

    print(f"preparing {args.database_url} ({args.users} users, {referrals} referrals) ...")
    prepared = run_helper(
        args,
        "prepare",
        f"--database-url={args.database_url}",
        f"--users={args.users}",
        f"--referrals={referrals}",
        f"--seed={args.seed}",
    )
    load_before = os.getloadavg()
    port = args.port or free_port()
    server = start_server(args, port, args.results_dir / "server.log")
    record: Record | None = None
    fault: dict = {}
    try:
        ready = wait_healthy(server, port, 120)
        print(
            f"server on http://{HOST}:{port}/ healthy after {ready:.1f} s; load for "
            f"{args.duration:g} s{' with a PostgreSQL restart' if args.fault else ''} ..."
        )
        record = Record()
        users = [
            Radiologist(name, prepared["password"], port, record, args, args.seed * 1000 + i)
            for i, name in enumerate(prepared["users"])
        ]
        threads = [threading.Thread(target=u.run, name=u.username) for u in users]
        stop_health = threading.Event()
        helpers = []
        if args.fault:
            helpers.append(threading.Thread(target=restart_postgres, args=(args, record, fault)))
            helpers.append(threading.Thread(target=poll_health, args=(port, record, stop_health)))
        for thread in threads:
            thread.start()
        for _thread in threads:
            record.logged_in.acquire(timeout=LOGIN_PHASE_LIMIT + args.timeout)
        record.deadline = args.duration
        login_phase = record.start_load()
        for thread in helpers:
            thread.start()
        for thread in threads:
            thread.join(args.duration + args.timeout + 240)
        elapsed = record.now()
        stop_health.set()
        for thread in helpers:
            thread.join(180)
        hung = [thread.name for thread in threads if thread.is_alive()]
    finally:
        stop_server(server)
        if not pg_ready(args.database_url) and args.fault:
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", pg_version(args), "main", "start"],
                check=False,
            )

    acks_path = args.results_dir / "acks.json"
    acks = {
        "decisions": record.decisions,
        "replies": record.replies,
        "unacknowledged_decisions": sorted(record.unacknowledged_decisions),
    }
    acks_path.write_text(json.dumps(acks, ensure_ascii=False, indent=1), encoding="utf-8")
    database = run_helper(args, "check", str(acks_path), f"--database-url={args.database_url}")

    summary = summarise(record, elapsed)
    summary["throughput"]["decisions_per_user_minute"] = round(
        len(record.decisions) / args.users / (elapsed / 60), 2
    )
    checks = []

    def add(name: str, ok: bool, what: str, examples: list[str] | None = None) -> None:
        checks.append({"name": name, "ok": ok, "what": what, "examples": examples or []})

    five = [s for s in record.samples if s.status >= 500]
    if args.fault:
        bad = [s for s in five if not (s.status == 503 and s.swedish_503)]
        add(
            "no_500",
            not bad,
            f"every 5xx is 503 with the Swedish page ({len(five)} 5xx, {len(bad)} other)",
            [f"{s.step} {s.status} at {s.start:.2f}s" for s in bad[:10]],
        )
    else:
        add(
            "no_server_errors",
            not five,
            f"no 5xx answer ({len(five)})",
            [f"{s.step} {s.status} at {s.start:.2f}s" for s in five[:10]],
        )
    add(
        "every_request_answered",
        not record.transport_errors,
        f"every request got an HTTP answer ({len(record.transport_errors)} without)",
        record.transport_errors[:10],
    )
    add(
        "flow_as_expected",
        not record.unexpected,
        f"every step answered as a browser expects ({len(record.unexpected)} otherwise)",
        record.unexpected[:10],
    )
    add("users_finished", not hung, f"every simulated user stopped in time ({len(hung)} hung)")
    add(
        "referrals_sufficed",
        record.exhausted_users == 0,
        f"the referral pool lasted the whole run ({record.exhausted_users} users ran out)",
    )
    add(
        "work_done",
        bool(record.decisions) and bool(record.replies),
        f"decisions and replies were acknowledged ({len(record.decisions)}, {len(record.replies)})",
    )
    fault_result = None
    if args.fault:
        fault_result = fault_summary(record, fault)
        back = fault_result.get("database_back_s")
        add(
            "postgres_restarted",
            fault_result.get("restart_status") == 0 and back is not None,
            f"{fault_result.get('command')} -> {fault_result.get('restart_status')}",
            [fault_result.get("restart_output", "")],
        )
        add(
            "outage_observed",
            fault_result["user_503"] > 0,
            f"requests during the outage were refused with 503 ({fault_result['user_503']})",
        )
        recovery = fault_result.get("recovery_s")
        add(
            "recovered",
            recovery is not None and recovery <= args.max_recovery,
            f"first successful request {recovery} s after the database was back "
            f"(limit {args.max_recovery:g} s)",
        )
        last = fault_result.get("last_503_s")
        add(
            "no_503_after_recovery",
            back is not None and (last is None or last - back <= args.max_recovery),
            f"no 503 later than {args.max_recovery:g} s after the database was back "
            f"(last 503 ended at {last} s, database back at {back} s)",
        )
    for check in database["checks"]:
        checks.append(check)

    result = {
        "mode": mode,
        "users": args.users,
        "duration_s": args.duration,
        "elapsed_s": round(elapsed, 2),
        "login_phase_s": round(login_phase, 2),
        "server": args.server,
        "port": port,
        "started_at": stamp,
        "results_dir": str(args.results_dir),
        "referrals_prepared": referrals,
        # Other work on the machine shares its CPUs with the server: read numbers with this.
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "summary": summary,
        "fault": fault_result,
        "database": database,
        "checks": checks,
        "ok": all(check["ok"] for check in checks),
    }
    (args.results_dir / "samples.json").write_text(
        json.dumps(
            {
                "fields": ["step", "status", "start_s", "seconds", "swedish_503"],
                "samples": [
                    [s.step, s.status, round(s.start, 4), round(s.seconds, 4), s.swedish_503]
                    for s in record.samples
                ],
                "healthz": [[round(t, 4), status] for t, status in record.health],
                "pg_isready": [[round(t, 4), ready] for t, ready in record.database],
            }
        ),
        encoding="utf-8",
    )
    (args.results_dir / "results.json").write_text(
        json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    print_table(result)
    return 0 if result["ok"] else 1


def _default_python() -> str:
    venv = PROJECT_DIR / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


if __name__ == "__main__":
    sys.exit(main())
