"""Shared fixtures: the real app on a free port with a real SQLite file, in this process
(``server``, ``start_app``) or as a real ``xtracker serve`` process (``start_server``: for what
only a process shows), and the real ``xtracker`` CLI against the same file."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.databases import migrated
from tests.inprocess import UVICORN_OPTIONS, cli_in_process, log_handler, settings_of

ADMIN_TOKEN = "xt_admin_test-operator-token-0123456789"
#: How long a server may take to answer /healthz after its start: a second or two, and up to
#: about 20 s on a machine loaded several times over; this bound only catches a hang.
READY_S = 60.0
#: What the tests' HTTP clients are given for ``verify``: they speak plain HTTP to loopback,
#: so there is no certificate to check, and a client that loads the CA bundle costs ~50 ms of
#: CPU each time (a poll loop of such clients is most of a server start's CPU here).
TLS_VERIFY = False


#: xdist workers per core (``-n auto``), and at most: measured on 2 cores (the suite as the
#: README runs it, quiet machine): 1 per core 234 s wall, 2 per core 178 s, 3 per core 193 s.
WORKERS_PER_CORE, MOST_WORKERS = 2, 8


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Two workers per core for ``-n auto``: a test spends about a third of its time waiting on
    a server, a command or a bot in another process, and a second worker runs meanwhile."""
    return min(MOST_WORKERS, WORKERS_PER_CORE * (os.cpu_count() or 1))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the packages once, before the xdist workers start. Where Python runs with
    PYTHONDONTWRITEBYTECODE=1 (this machine's shells, and so its CI), nothing writes the cached
    bytecode, and every process the suite starts (servers, their writer and worker processes,
    CLI runs, example bots, clients) would compile the packages from source again: a few tenths
    of a second of CPU each, hundreds of times. Reading cached bytecode is not switched off."""
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller did it
        return
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("xtracker_server", "xtracker_client", "xtracker_wire"):
        compileall.compile_dir(root / package, quiet=1)


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> object:
    """Let pytest keep the test modules it rewrote (their asserts) while it collects them.
    It writes them beside each module (``__pycache__``, as wherever bytecode may be written)
    and reads them back while the module is unchanged; under PYTHONDONTWRITEBYTECODE=1 it
    rewrote the 130 modules again in each xdist worker on every run: about 8 s of CPU per
    worker, most of the collection. Two workers writing one file is safe (pytest writes a
    temporary file and renames it)."""
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = False
    try:
        return (yield)
    finally:
        sys.dont_write_bytecode = dont_write


#: Modules run before the others, in this order. pytest-xdist's worksteal gives each worker an
#: equal run of the collection and moves tests from the END of a busy worker's run to an idle
#: one, so the first module here runs whole in the first worker: the examples' tests import
#: aiogram in the test process (about 6 s of CPU, once per process that runs any of them).
#: The modules of tests/ itself came last: a few long tests (mypy, two serve processes) that
#: could leave one worker running alone at the end; the run now ends with many short ones.
FIRST = (
    "tests/examples/test_examples.py",
    "tests/test_quality.py",
    "tests/test_inprocess.py",
    "tests/test_packages.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {module: i for i, module in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(FIRST)))


def _freeze_what_lives_on() -> None:
    """Collect the garbage, then take what is left out of the garbage collector's passes
    (``gc.freeze``): what the collection made (every test module, 2,670 items) and what a
    module of tests imported (the app, aiohttp; aiogram is 200,000 objects) lives to the end
    of the run. The collector's full passes went over all of it again and again, and so did
    the interpreter's exit: measured on tests/e2e (4 workers), about 4 s of CPU at the
    workers' exit and 1 s of passes, out of 160. What a test leaves is not frozen before it
    has had its chance to be collected (and to warn, were it a socket left open)."""
    gc.collect()
    gc.freeze()


def pytest_collection_finish(session: pytest.Session) -> None:
    """What the collection made is frozen as it is: the little garbage among it (imports
    leave next to none) is not worth a pass over all of it (0.2 s of CPU per worker)."""
    gc.freeze()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """After the last test of a module here (its module's fixtures gone), what lives on is
    frozen too."""
    try:
        return (yield)
    finally:
        if nextitem is None or nextitem.path != item.path:
            _freeze_what_lives_on()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(db: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The real ``xtracker`` command, as a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "xtracker_server", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XTRACKER_DB": ""},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"xtracker {' '.join(args)} failed: {proc.stderr}{proc.stdout}")
    return proc


@dataclass
class SpaceKeys:
    id: int
    name: str
    bearer: str
    ingest_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.bearer}"}


@dataclass
class Server:
    db: Path
    port: int
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    _log_from: int = field(default=0, repr=False)  # where the lines of the last start begin

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.log is None:  # set it to keep the log off the database's file system
            self.log = self.db.with_suffix(f".{self.port}.log")
        # The port was free when free_port() looked; another test running at the same time
        # (pytest-xdist's workers) may have taken it since: then the server starts on another.
        for _ in range(3):
            taken = len(self.log_text())
            try:
                self._start()
                return
            except AssertionError:
                if "address already in use" not in self.log_text()[taken:]:
                    raise
                self.port = free_port()
        self._start()

    def _start(self) -> None:
        assert self.log is not None
        self._log_from = len(self.log_text())  # this start's lines follow
        env = {**os.environ, "XTRACKER_ADMIN_TOKEN": ADMIN_TOKEN, **self.env}
        env.pop("XTRACKER_DB", None)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "xtracker_server",
                    "serve",
                    "--db",
                    str(self.db),
                    "--port",
                    str(self.port),
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = READY_S) -> None:
        """Until this process answers on its port. Another test's server that took the port
        (free_port's race) answers /healthz too: only once this process said it listens (and
        has not exited on "address already in use") is the answer its own."""
        deadline = time.monotonic() + timeout
        listening = f"Uvicorn running on {self.url}"
        with httpx.Client(timeout=1, verify=TLS_VERIFY) as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(f"server exited: {self.log_text()}")
                try:
                    if (
                        http.get(f"{self.url}/healthz").status_code == 200
                        and listening in self.log_text()[self._log_from :]
                    ):
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.02)  # the port is not open yet: there is no event to await
        raise AssertionError(f"server not ready in {timeout}s: {self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The real ``xtracker`` command on this server's file, run in this process (what
        ``run_cli`` runs as a process: for a test of the command itself)."""
        return cli_in_process(self.db, *args, check=check)

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def new_space(self, name: str = "demo") -> SpaceKeys:
        data = self.cli_json("space", "create", name)
        return SpaceKeys(**data)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, verify=TLS_VERIFY)


@dataclass
class AppServer(Server):
    """The real app (``create_app``, the real store with its writer on a thread, a real SQLite
    file) served by uvicorn from a thread of the test process, on a loopback port: clients
    reach it over HTTP as they reach ``xtracker serve``. What only a process shows (SIGKILL,
    its children, what ``serve`` prints) needs ``start_server``."""

    port: int = 0  # the first start picks a free one; a restart keeps it
    _uvicorn: Any = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _handler: logging.Handler | None = field(default=None, repr=False)

    def start(self) -> None:
        import uvicorn

        from xtracker_server.app import create_app
        from xtracker_server.store.sqlite.startup import check_database

        sock = socket.socket()  # bound here, so that the app's settings know its port
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            self.port = int(sock.getsockname()[1])
            # Writes on a thread of the app (XTRACKER_WRITER_PROCESS=off, a setting of its own
            # in production too): a writer process per server costs half a second of CPU and
            # adds nothing here. The writer process is the subject of test_writer_process.py
            # and of the real servers (start_server), which keep it; a test may ask for it.
            # The same for the delivery worker's process (XTRACKER_WORKER_PROCESS=off: the
            # worker runs in the app; its process: tests/e2e/test_worker_process.py).
            env = {"XTRACKER_ADMIN_TOKEN": ADMIN_TOKEN, "XTRACKER_WRITER_PROCESS": "off",
                   "XTRACKER_WORKER_PROCESS": "off", **self.env}  # fmt: skip
            settings = settings_of(self.db, self.port, self.extra_args, env)
            check_database(settings.db, sync=settings.sync)  # as `serve` does before it starts
            app = create_app(settings)
        except BaseException:
            sock.close()
            raise
        if self.log is None:
            self.log = self.db.with_suffix(f".{self.port}.log")
        self._handler = log_handler(self.log)
        for name in ("xtracker", "uvicorn"):
            logging.getLogger(name).addHandler(self._handler)
        self._uvicorn = uvicorn.Server(uvicorn.Config(app, **UVICORN_OPTIONS))
        self._thread = threading.Thread(
            target=self._uvicorn.run,
            kwargs={"sockets": [sock]},
            name=f"app-{self.port}",
            daemon=True,  # a test that forgot to stop it does not hold the run at exit
        )
        self._thread.start()
        self.wait_ready()

    def wait_ready(self, timeout: float = READY_S) -> None:
        """Ready as a process is: once /healthz answers 200 (a request /metrics counts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._thread is None or not self._thread.is_alive():
                self.stop()
                raise AssertionError(f"the app did not start: {self.log_text()}")
            if self._uvicorn.started:
                with contextlib.suppress(httpx.TransportError):
                    r = httpx.get(f"{self.url}/healthz", timeout=1, verify=TLS_VERIFY)
                    if r.status_code == 200:
                        return
            time.sleep(0.01)  # uvicorn sets a flag: there is no event to wait on
        self.stop()
        raise AssertionError(f"the app not ready in {timeout}s: {self.log_text()}")

    def log_text(self) -> str:
        if self._handler is not None:
            self._handler.flush()
        return super().log_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """What SIGTERM does to ``xtracker serve``: the live streams end, then uvicorn's
        graceful shutdown (the app's lifespan drains and closes the store)."""
        if sig != signal.SIGTERM:
            raise TypeError("an in-process server only stops; kill a real one (start_server)")
        server, thread = self._uvicorn, self._thread
        if server is not None and thread is not None:
            server.config.app.app.state.streams.close_soon()
            # The connections its clients closed are let go first (a moment): one still open
            # at the shutdown may be left to the collector unclosed, a ResourceWarning that
            # fails whichever test is running then.
            deadline = time.monotonic() + 2
            while server.server_state.connections and time.monotonic() < deadline:
                time.sleep(0.01)
            server.should_exit = True
            thread.join(timeout)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout)
            assert not thread.is_alive(), f"the app did not stop in {2 * timeout}s"
        if self._handler is not None:
            for name in ("xtracker", "uvicorn"):
                logging.getLogger(name).removeHandler(self._handler)
            self._handler.close()
        self._uvicorn = self._thread = self._handler = None


ServerFactory = Callable[..., Server]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers with custom flags; each is stopped at the end of the test."""
    started: list[Server] = []

    def start(*extra_args: str, db: Path | None = None, **env: str) -> Server:
        server = Server(
            db=db or tmp_path / "xtracker.db", port=free_port(), extra_args=extra_args, env=env
        )
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[ServerFactory]:
    """``start_server``'s servers in this process (``AppServer``): the same flags and
    environment, each stopped at the end of the test. Without ``db``: the test's database,
    new (``migrated``) for the first server."""
    started: list[Server] = []

    def start(*extra_args: str, db: Path | None = None, **env: str) -> Server:
        if db is None:
            db = tmp_path / "xtracker.db"
            if not db.exists():
                migrated(db)
        server = AppServer(db=db, extra_args=extra_args, env=env)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def module_server(
    tmp_path_factory: pytest.TempPathFactory, *extra_args: str, **env: str
) -> Iterator[Server]:
    """The body of a module's ``server`` fixture: an in-process server on a new database
    (``migrated``), with these flags and environment, stopped after the module's tests."""
    db = migrated(tmp_path_factory.mktemp("srv") / "xtracker.db")
    server = AppServer(db=db, extra_args=extra_args, env=env)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One in-process server per test module (fresh database): the tests of a module share
    it, each in spaces of its own."""
    yield from module_server(tmp_path_factory)


@pytest.fixture(scope="module")
def space(server: Server) -> SpaceKeys:
    return server.new_space("space-a")


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def sink() -> Iterator[Any]:
    from tests.sink import Sink

    s = Sink()
    yield s
    s.close()


FAST_RETRY = (
    "--allow-private-destinations",
    "--retry-base-s",
    "0.2",
    "--retry-cap-s",
    "1",
    "--rate-limit",
    "0",
)


def fuzz_examples(default: int) -> int:
    """How many examples a property or fuzz test tries: ``default``, or more for a longer run
    with XTRACKER_FUZZ_EXAMPLES (docs/api.md#testing-the-contract)."""
    return max(default, int(os.environ.get("XTRACKER_FUZZ_EXAMPLES") or 0))
