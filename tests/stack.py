"""Runs the whole product for a test session the way `make run` does (the Procfile's commands,
each service its own process), in a private PostgreSQL database and RabbitMQ vhost."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import psycopg2
import requests

from services.common.config import ROOT

ADMIN_DSN = os.environ.get("TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_BASE = os.environ.get("TEST_AMQP_BASE", "pyamqp://guest:guest@127.0.0.1:5672")
PUBLIC_BASE_URL = "https://outreach.example.org"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile():
    entries = {}
    with open(os.path.join(ROOT, "Procfile")) as f:
        for line in f:
            if ":" in line and not line.startswith("#"):
                name, cmd = line.split(":", 1)
                entries[name.strip()] = cmd.strip()
    return entries


def rabbitmqctl(*args):
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid):
    """Whether any process of the group is still running (zombies of our own shells aside)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _running(pid):
    """Whether process `pid` exists and is not a zombie (killed, its exit not yet collected)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def reap_orphans():
    """Kills test-stack processes (OUTREACH_TEST=1 in their environment) left by a test run that
    was itself killed before it could stop its stack: their test run's process is gone, or their
    database is. Then drops the databases of such runs."""
    conn = psycopg2.connect(ADMIN_DSN)
    conn.autocommit = True
    try:
        cur = conn.cursor()
        cur.execute("SELECT datname FROM pg_database")
        live = {r[0] for r in cur.fetchall()}
        orphaned = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
            except OSError:
                continue
            if env.get(b"OUTREACH_TEST") != b"1":
                continue
            db = env.get(b"DATABASE_URL", b"").rsplit(b"/", 1)[-1].decode(errors="replace")
            owner = env.get(b"OUTREACH_TEST_OWNER", b"").decode(errors="replace")
            owner_gone = owner.isdigit() and not _running(owner)
            if db.startswith("outreach_test_") and (owner_gone or db not in live):
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    pass
                if db in live:
                    orphaned.add(db)
        for db in live:
            # outreach_test_<owner pid>_<tag>: the run that made it is gone.
            pid = db.split("_")[2] if db.startswith("outreach_test_") and db.count("_") >= 3 else ""
            if pid.isdigit() and not _running(pid):
                orphaned.add(db)
        for db in orphaned:
            cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            if shutil.which("rabbitmqctl"):
                rabbitmqctl("delete_vhost", db)  # the stack's vhost has the database's name
    finally:
        conn.close()


class Stack:
    def __init__(self, workdir):
        # The owner's pid in the name: a later run drops what a killed run left (reap_orphans).
        tag = f"{os.getpid()}_{uuid.uuid4().hex[:10]}"
        self.workdir = workdir
        self.db_name = f"outreach_test_{tag}"
        self.vhost = f"outreach_test_{tag}"
        self.gateway_port = free_port()
        self.smtp_port = free_port()
        self.smtp_http_port = free_port()
        self.url = f"http://127.0.0.1:{self.gateway_port}"
        self.mail_url = f"http://127.0.0.1:{self.smtp_http_port}"
        self.database_url = f"postgresql://postgres@127.0.0.1:5432/{self.db_name}"
        self.procs = {}
        self.own_vhost = False
        self.twilio = None  # stand-in for Twilio's REST API (tests/messaging/twilio_standin.py)

    @property
    def amqp_uri(self):
        return f"{AMQP_BASE}/{self.vhost}" if self.own_vhost else f"{AMQP_BASE}/"

    def env(self):
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": self.database_url, "AMQP_URI": self.amqp_uri,
            "GATEWAY_PORT": str(self.gateway_port), "SMTP_SINK_PORT": str(self.smtp_port),
            "SMTP_SINK_HTTP_PORT": str(self.smtp_http_port),
            "SMTP_SINK_DIR": os.path.join(self.workdir, "mail"),
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL, "PYTHONPATH": ROOT, "RPC_TIMEOUT": "30",
            "LOG_LEVEL": "INFO", "OUTREACH_TEST": "1",
            # Whose stack this is: a later run reaps it if this process died without stopping it.
            "OUTREACH_TEST_OWNER": str(os.getpid()),
        })
        if self.twilio is not None:
            env["TWILIO_API_BASE"] = self.twilio.url
        for svc in ("IDENTITY", "CONTACTS", "CAMPAIGNS", "MESSAGING", "REPORTING"):
            env.pop(f"{svc}_DATABASE_URL", None)
        return env

    def start(self):
        reap_orphans()
        if shutil.which("rabbitmqctl") and rabbitmqctl("add_vhost", self.vhost).returncode == 0:
            rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
            self.own_vhost = True
        from tests.messaging.twilio_standin import TwilioStandIn
        self.twilio = TwilioStandIn().start()
        env = self.env()
        subprocess.run([sys.executable, "-m", "services.common.migrate"], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        for name, cmd in procfile().items():
            log = open(os.path.join(self.workdir, f"{name}.log"), "wb")
            self.procs[name] = subprocess.Popen(
                cmd, shell=True, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()
        return self

    def wait_ready(self, timeout=90):
        from nameko.standalone.rpc import ClusterRpcProxy
        deadline = time.time() + timeout
        services = [n for n in self.procs if n not in ("gateway", "smtp", "importer")]
        with ClusterRpcProxy({"AMQP_URI": self.amqp_uri}, timeout=5) as proxy:
            for name in services:
                while True:
                    self.check_alive()
                    try:
                        getattr(proxy, name).ping()
                        break
                    except Exception:
                        if time.time() > deadline:
                            raise RuntimeError(f"{name} did not start:\n{self.log(name)}")
                        time.sleep(0.3)
        for url in (f"{self.url}/health", f"{self.mail_url}/messages"):
            while True:
                self.check_alive()
                try:
                    if requests.get(url, timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.time() > deadline:
                    raise RuntimeError(f"{url} did not answer")
                time.sleep(0.2)

    def check_alive(self):
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")

    def log(self, name):
        path = os.path.join(self.workdir, f"{name}.log")
        with open(path, "rb") as f:
            return f.read()[-6000:].decode("utf-8", "replace")

    def rpc(self, timeout=30):
        from nameko.standalone.rpc import ClusterRpcProxy
        return ClusterRpcProxy({"AMQP_URI": self.amqp_uri, "serializer": "json"}, timeout=timeout)

    def db(self, schema):
        return psycopg2.connect(self.database_url, options=f"-c search_path={schema}")

    def stop(self):
        if self.twilio is not None:
            self.twilio.stop()
        # Each Procfile command runs in its own session (process group = the shell's pid): the
        # whole group is asked to stop, then whatever is left of it (a service still draining, a
        # normalising pool's children) is killed, so no process outlives the test session.
        groups = [proc.pid for proc in self.procs.values()]
        for pgid in groups:
            _signal_group(pgid, signal.SIGTERM)
        deadline = time.time() + 15
        while time.time() < deadline and any(_group_alive(pgid) for pgid in groups):
            time.sleep(0.1)
        for pgid in groups:
            _signal_group(pgid, signal.SIGKILL)
        for proc in self.procs.values():
            proc.wait(timeout=15)
        if os.environ.get("KEEP_TEST_DB"):
            return
        conn = psycopg2.connect(ADMIN_DSN)
        conn.autocommit = True
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        conn.close()
        if self.own_vhost:
            rabbitmqctl("delete_vhost", self.vhost)
