"""A real one-machine HTCondor pool for the tests: found, unpacked, configured, started, stopped.

The installation is, in this order: ``CONDORMAGIC_TEST_HTCONDOR`` (a prefix directory, or a
``.tar.xz`` of one), ``condor_master`` on ``PATH``, or ``../shared/htcondor/*.tar.xz`` beside
the clone. A tarball is unpacked once into a cache (``CONDORMAGIC_TEST_CACHE``, default
``~/.cache/condormagic-tests``, or ``/var/cache/condormagic-tests`` for root, whose home other
users cannot read), in a directory named by its sha256.

The pool lives in a private temporary directory and listens on a free port of 127.0.0.1 only.
Jobs never run as root: when the tests run as root, the pool's daemons and jobs, and the
submitting side (:meth:`HTCondorPool.run_python`, :meth:`HTCondorPool.execute_notebook`),
run as the unprivileged user :data:`POOL_USER`, created if missing, as a notebook user owns
both on a real site. As a normal user, everything runs as that user.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV_INSTALLATION = "CONDORMAGIC_TEST_HTCONDOR"
ENV_CACHE = "CONDORMAGIC_TEST_CACHE"
POOL_USER = "condormagic-pool"
# Seconds the daemons get to appear in the collector, and to exit after ``condor_off -master``
# (they take a fraction of a second; a pool that never started may never answer it).
START_TIMEOUT = 30
STOP_TIMEOUT = 10
# What a process run for the pool inherits from the test process; everything else (HOME, TMPDIR,
# _CONDOR_* overrides, CONDOR_CONFIG, JUPYTER_*...) belongs to the test process's own user.
INHERITED = ("PATH", "LANG", "LANGUAGE", "TZ", "TERM")
LOGS = ("MasterLog", "CollectorLog", "NegotiatorLog", "SchedLog", "StartLog", "ShadowLog")


class NoInstallation(Exception):
    """No HTCondor installation was found: the pool tests are skipped (or fail, if required)."""


class PoolError(Exception):
    """The pool could not be set up, started or used."""


# -- the installation -------------------------------------------------------------------------
def find_installation(repo: Path = REPO) -> Path:
    """The HTCondor installation to use: a prefix directory (with ``sbin/condor_master``) or a tarball.

    Raises
    ------
    NoInstallation
        Nothing was found.
    PoolError
        ``CONDORMAGIC_TEST_HTCONDOR`` names neither.
    """
    named = os.environ.get(ENV_INSTALLATION)
    if named:
        path = Path(named).expanduser().absolute()
        if path.is_file() and path.name.endswith(".tar.xz"):
            return path
        if (path / "sbin" / "condor_master").is_file():
            return path
        # Asked for by name: a wrong name is an error, not a reason to skip.
        raise PoolError(
            f"{ENV_INSTALLATION}={named} is neither an HTCondor prefix (with sbin/condor_master) nor a .tar.xz of one"
        )
    master = shutil.which("condor_master")
    if master:
        return Path(master).resolve().parent.parent
    tarballs = sorted(glob.glob(str(repo.parent / "shared" / "htcondor" / "*.tar.xz")))
    if tarballs:
        return Path(tarballs[-1])
    raise NoInstallation(
        f"no HTCondor installation: set {ENV_INSTALLATION} to a prefix or a .tar.xz, put condor_master on PATH, "
        f"or put a tarball in {repo.parent / 'shared' / 'htcondor'}"
    )


def cache_root() -> Path:
    """Where tarballs are unpacked: a place the pool user can read."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser().absolute()
    if os.geteuid() == 0:
        return Path("/var/cache/condormagic-tests")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "condormagic-tests"


def unpack(tarball: Path) -> Path:
    """The prefix of ``tarball`` unpacked in the cache; unpacked now if it is not there yet.

    Two processes may ask at once: one unpacks (under a lock, into a temporary directory
    renamed into place when whole), the other waits for it and uses the result.
    """
    cache = cache_root()
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()[:16]
    target = cache / f"{tarball.name.removesuffix('.tar.xz')}-{digest}"
    if not target.is_dir():
        if not cache.is_dir():
            cache.mkdir(parents=True, exist_ok=True)
            cache.chmod(0o755)
        with open(cache / f".{target.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not target.is_dir():
                partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache))
                try:
                    # The "data" filter (Python 3.11.4+) keeps members inside and drops set-uid bits.
                    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                    with tarfile.open(tarball) as archive:
                        archive.extractall(partial, **safe)
                    partial.chmod(0o755)
                    partial.rename(target)
                except BaseException:
                    shutil.rmtree(partial, ignore_errors=True)
                    raise
    # A tarball holds the prefix itself, or one directory that does.
    if (target / "sbin" / "condor_master").is_file():
        return target
    inner = [p for p in target.iterdir() if (p / "sbin" / "condor_master").is_file()]
    if len(inner) != 1:
        raise PoolError(f"{tarball} holds no HTCondor prefix (no sbin/condor_master in {target})")
    return inner[0]


def _first_dir(*candidates: Path) -> Path:
    return next((p for p in candidates if p.is_dir()), candidates[-1])


# -- the pool user ----------------------------------------------------------------------------
def ensure_user(name: str = POOL_USER) -> pwd.struct_passwd:
    """The unprivileged user ``name``, created (with a home directory) if missing."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    shell = next((s for s in ("/usr/sbin/nologin", "/sbin/nologin") if os.path.exists(s)), "/bin/false")
    done = subprocess.run(
        ["useradd", "--create-home", "--shell", shell, "--comment", "condormagic test pool", name],
        capture_output=True,
        text=True,
    )
    try:  # another test process may have made it meanwhile: useradd then fails, and that is fine
        return pwd.getpwnam(name)
    except KeyError:
        raise PoolError(f"could not create the pool user {name}: useradd said {done.stderr.strip()!r}") from None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the pool ---------------------------------------------------------------------------------
CONFIG = """\
# condormagic's test pool: one machine, 127.0.0.1 only (written by tests/htcondor_pool.py).
RELEASE_DIR = {prefix}
BIN = {bin}
SBIN = {sbin}
LIB = {lib}
LIBEXEC = {libexec}
LOCAL_DIR = {local}
LOCAL_CONFIG_FILE =
LOCAL_CONFIG_DIR =

use ROLE : Personal
use SECURITY : HOST_BASED
ALLOW_READ = 127.0.0.1
ALLOW_WRITE = 127.0.0.1
ALLOW_NEGOTIATOR = 127.0.0.1
ALLOW_ADMINISTRATOR = 127.0.0.1
ALLOW_DAEMON = 127.0.0.1
ALLOW_CONFIG = 127.0.0.1

CONDOR_HOST = 127.0.0.1
NETWORK_INTERFACE = 127.0.0.1
COLLECTOR_HOST = 127.0.0.1:{port}
COLLECTOR_HOST_FOR_NEGOTIATOR = $(COLLECTOR_HOST)
ENABLE_IPV6 = False
# Another pool's shared port (9618) must not be ours.
USE_SHARED_PORT = False

NUM_CPUS = 2
MEMORY = 4096

# Jobs start within seconds: short intervals, and no 20 s pause between negotiation cycles.
UPDATE_INTERVAL = 2
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_MIN_INTERVAL = 1
NEGOTIATOR_CYCLE_DELAY = 1
SCHEDD_INTERVAL = 2
SCHEDD_MIN_INTERVAL = 1

# A master started as root would otherwise tune this machine's kernel (sysctl).
ENABLE_KERNEL_TUNING = False
# No java universe: the startd does not start a JVM to probe it.
JAVA =
# No URL-transfer plugins (box, gdrive... need Python modules this machine lacks and fill the
# starter's log with their tracebacks); the tests transfer files and read URLs through GDAL.
ENABLE_URL_TRANSFERS = False

# A job that uses more memory than it asked for is stopped, as most sites do (where cgroups
# do it, the hold has code 34; here the startd's policy holds it with code 21, subcode 102),
# and that within seconds: the starter reports the job's memory every second.
use POLICY : HOLD_IF_MEMORY_EXCEEDED
STARTER_INITIAL_UPDATE_INTERVAL = 1
STARTER_UPDATE_INTERVAL = 1
PROCD_MAX_SNAPSHOT_INTERVAL = 1
POLLING_INTERVAL = 1

# A site's rule for what it accepts (SUBMIT_REQUIREMENT): the schedd refuses, with this reason,
# a job whose ProjectName is "refused" (what the tests submit to see a real refusal).
SUBMIT_REQUIREMENT_NAMES = Project
SUBMIT_REQUIREMENT_Project = (TARGET.ProjectName =!= "refused")
SUBMIT_REQUIREMENT_Project_REASON = "project refused is closed; use another +ProjectName"
"""


class HTCondorPool:
    """A running one-machine pool; see the module's docstring.

    Attributes
    ----------
    root : Path
        The pool's private directory: ``condor_config``, ``local/`` (``log``, ``spool``,
        ``execute``...) and ``scratch/``, all owned by the pool user.
    env : dict
        What a process needs to use the pool: ``CONDOR_CONFIG``, and ``PATH`` with the tools.
    user : str or None
        The unprivileged user the pool and the submitting side run as, when the tests run as
        root; ``None`` otherwise (everything runs as the test process's user).
    login, uid, gid : str, int, int
        Who owns the pool's processes and jobs: :attr:`user`, or the test process's user.
    collector : str
        ``127.0.0.1:PORT``.
    started_in : float
        Seconds from ``condor_master`` to the schedd and a slot in the collector.
    """

    def __init__(self, prefix: Path):
        self.prefix = prefix
        self.bin, self.sbin = prefix / "bin", prefix / "sbin"
        if os.geteuid() == 0:
            account = ensure_user()
            self.user: str | None = account.pw_name
        else:
            account = pwd.getpwuid(os.geteuid())
            self.user = None
        self.uid, self.gid, self.home = account.pw_uid, account.pw_gid, account.pw_dir
        self.login = account.pw_name
        self.root = Path(tempfile.mkdtemp(prefix="condormagic-pool-"))
        self.local = self.root / "local"
        self.log_dir = self.local / "log"
        self.scratch = self.root / "scratch"
        self.config = self.root / "condor_config"
        self.port = _free_port()
        self.collector = f"127.0.0.1:{self.port}"
        self.env = {
            "CONDOR_CONFIG": str(self.config),
            "PATH": os.pathsep.join([str(self.bin), str(self.sbin), os.environ.get("PATH", os.defpath)]),
        }
        self.started_in: float | None = None
        self._master: subprocess.Popen | None = None

    # -- start, stop ----------------------------------------------------------------------
    @classmethod
    def start(cls, installation: Path) -> HTCondorPool:
        """Start a pool from ``installation`` (a prefix or a tarball); return it once it can run jobs."""
        prefix = unpack(installation) if installation.is_file() else installation
        pool = cls(prefix)
        try:
            pool._write_config()
            pool._start_master()
            pool._check_user_python()
            pool._wait_until_ready()
        except BaseException:
            pool.stop()
            pool.remove()  # what went wrong is in the exception, with the logs' tails
            raise
        return pool

    def _write_config(self) -> None:
        for sub in ("log", "spool", "execute", "lock", "run"):
            (self.local / sub).mkdir(parents=True)
        self.scratch.mkdir()
        libexec = _first_dir(self.prefix / "libexec" / "condor", self.prefix / "libexec")
        lib = _first_dir(self.prefix / "lib" / "condor", self.prefix / "lib64" / "condor", self.prefix / "lib")
        text = CONFIG.format(
            prefix=self.prefix,
            bin=self.bin,
            sbin=self.sbin,
            lib=lib,
            libexec=libexec,
            local=self.local,
            port=self.port,
        )
        if self.user:
            # Started as root, the master runs its daemons as this user, and needs to be told so.
            text += f"CONDOR_IDS = {self.uid}.{self.gid}\n"
        self.config.write_text(text)
        if self.user:
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, self.uid, self.gid)

    def _start_master(self) -> None:
        # -f: the master stays in the foreground, our child, whose pid we know.
        with open(self.root / "master.out", "wb") as out:
            self._master = subprocess.Popen(
                [str(self.sbin / "condor_master"), "-f"],
                env=self._base_env(),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._started = time.monotonic()

    def _check_user_python(self) -> None:
        """The submitting side's interpreter and condormagic must work for the pool user."""
        try:
            done = self.run_python("import condormagic, htcondor2", timeout=60, check=False)
            why = done.stderr[-2000:]
        except OSError as exc:  # the interpreter itself is out of reach
            done, why = None, str(exc)
        if done is None or done.returncode:
            raise PoolError(
                f"{self._who()} cannot run {sys.executable} (-> {os.path.realpath(sys.executable)}) with condormagic: "
                f"the venv, its base interpreter and the repository must be readable by that user, not under a "
                f"0700 home such as root's pyenv (make the venv with /usr/bin/python3 -m venv):\n{why}"
            )

    def _wait_until_ready(self) -> None:
        deadline = self._started + START_TIMEOUT
        seen: set[str] = set()
        said = ""
        while True:
            if self._master.poll() is not None:
                raise PoolError(f"condor_master exited ({self._master.returncode}) at start\n{self.log_tail()}")
            try:
                done = subprocess.run(
                    [str(self.bin / "condor_status"), "-any", "-af", "MyType"],
                    env=self._base_env(),
                    capture_output=True,
                    text=True,
                    timeout=5,
                )
                seen, said = set(done.stdout.split()), done.stderr.strip()
            except subprocess.TimeoutExpired:  # something holds the port, but does not answer
                said = f"condor_status got no answer from {self.collector} within 5 s"
            if {"Scheduler", "Machine"} <= seen:
                self.started_in = time.monotonic() - self._started
                return
            if time.monotonic() > deadline:
                raise PoolError(
                    f"the pool at {self.collector} had no schedd and a slot in its collector after {START_TIMEOUT} s "
                    f"(seen: {', '.join(sorted(seen)) or 'nothing'}; {said})\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """``condor_off -master``; if the master lingers, a fast shutdown; then kill by pid what is left."""
        master, self._master = self._master, None
        if master is None or master.poll() is not None:
            return
        started = _process_tree(master.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                [str(self.sbin / "condor_off"), "-master"], env=self._base_env(), capture_output=True, timeout=10
            )
        if not _exited(master, STOP_TIMEOUT):
            master.send_signal(signal.SIGQUIT)  # HTCondor's fast shutdown
            if not _exited(master, 5):
                started += _process_tree(master.pid)
                master.kill()
                master.wait()
        for pid, birth in started:
            if _birth(pid) == birth:  # still a process the master started, not a new one with its pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # -- for the tests --------------------------------------------------------------------
    def run_python(
        self,
        code: str,
        timeout: float = 120,
        cwd: str | os.PathLike | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess:
        """Run ``code`` with this venv's interpreter as the pool user, with the pool's environment.

        ``cwd`` (default :attr:`scratch`) must be reachable by the pool user; ``env`` adds
        variables (``CONDORMAGIC_RUNS_DIR``...). With ``check``, a failure raises
        :class:`PoolError` with the snippet's stderr.
        """
        done = self._run_as_user([sys.executable, "-c", code], timeout, cwd, env)
        if check and done.returncode:
            raise PoolError(f"the snippet failed as {self._who()} (exit {done.returncode}):\n{done.stderr[-6000:]}")
        return done

    def execute_notebook(
        self,
        nb_or_cells,
        cwd: str | os.PathLike,
        timeout: float = 300,
        env: dict[str, str] | None = None,
        allow_errors: bool = False,
    ):
        """Execute a notebook (or a list of code cells) with nbclient, the kernel running as the pool user.

        The kernel starts in ``cwd`` (reachable by the pool user) with the pool's environment
        and ``env``; returns the executed notebook. A cell that raises (without
        ``allow_errors``) raises :class:`PoolError` with nbclient's report.
        """
        import nbformat

        nb = nb_or_cells
        if not isinstance(nb, nbformat.NotebookNode):
            nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in nb_or_cells])
        folder = Path(tempfile.mkdtemp(prefix="notebook-", dir=self.scratch))
        self.make_user_dir(folder)
        source, target = folder / "in.ipynb", folder / "out.ipynb"
        nbformat.write(nb, source)
        done = self._run_as_user(
            [sys.executable, "-c", EXECUTOR, str(source), str(target), str(cwd), str(int(timeout)), str(allow_errors)],
            timeout + 60,
            cwd,
            env,
        )
        try:
            if done.returncode:
                raise PoolError(
                    f"the notebook failed as {self._who()} (exit {done.returncode}):\n{done.stderr[-6000:]}"
                )
            return nbformat.read(target, as_version=4)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def call(self, func, timeout: float = 180, cwd=None, env: dict | None = None, **kwargs):
        """Call ``func(**kwargs)`` in a new Python process of the submitting side (as the pool user).

        ``func`` is a top-level function of a module the tests import (its folder goes on
        ``sys.path``); the test modules it imports are pickled by value, so the functions it
        submits reach the jobs whole. ``kwargs`` and the return value travel as JSON. A failure
        raises :class:`PoolError` with the process's stderr and the daemons' logs.
        """
        module = sys.modules[func.__module__]
        folder = os.path.dirname(os.path.abspath(module.__file__))
        code = CALLER.format(folder=folder, module=module.__name__, name=func.__name__, mark=RESULT_MARK)
        done = self._run_as_user([sys.executable, "-c", code, json.dumps(kwargs)], timeout, cwd, env)
        out = done.stdout.rpartition(RESULT_MARK)
        if done.returncode or not out[1]:
            raise PoolError(
                f"{func.__name__} failed as {self._who()} (exit {done.returncode}):\n{done.stdout[-3000:]}\n"
                f"{done.stderr[-6000:]}\n{self.log_tail()}"
            )
        return json.loads(out[2])

    def tool(self, *argv: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        """Run an HTCondor tool of the pool (``condor_q``, ``condor_vacate_job``...) as the pool user."""
        tool = self.bin / argv[0] if (self.bin / argv[0]).exists() else self.sbin / argv[0]
        done = self._run_as_user([str(tool), *argv[1:]], timeout, None, None)
        if check and done.returncode:
            raise PoolError(f"{' '.join(argv)} failed (exit {done.returncode}): {done.stderr.strip()}")
        return done

    def command(self, argv: list[str], timeout: float = 120, cwd=None, env: dict | None = None):
        """Run a command (``condormagic status NAME``...) as the pool user, with the pool's environment."""
        return self._run_as_user(argv, timeout, cwd, env)

    @property
    def schedd_name(self) -> str:
        """The schedd's ``Name``, as the collector lists it."""
        return self.tool("condor_status", "-schedd", "-af", "Name").stdout.split()[0]

    def make_user_dir(self, path: str | os.PathLike) -> Path:
        """Make ``path`` (and its missing parents) a directory owned by the pool user; return it.

        Raises :class:`PoolError` if the user cannot reach it (a parent closed to it, such
        as root's 0700 pytest temporary directory): make it under :attr:`scratch` instead.
        """
        path = Path(path).absolute()
        made = [p for p in (path, *path.parents) if not p.exists()]
        path.mkdir(parents=True, exist_ok=True)
        if self.user:
            for p in {path, *made}:
                os.chown(p, self.uid, self.gid)
            if self._run_as_user(["test", "-w", str(path), "-a", "-x", str(path)], 10, "/", None).returncode:
                raise PoolError(f"{path} is not reachable by {self._who()}: one of its parents is closed to that user")
        return path

    def log_tail(self, lines: int = 25) -> str:
        """The last ``lines`` of each daemon log (and of the master's output), for a failure message."""
        paths = [self.log_dir / name for name in LOGS] + sorted(self.log_dir.glob("StarterLog.*"))
        parts = []
        for path in [*paths, self.root / "master.out"]:
            if path.is_file():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path}\n" + "\n".join(tail))
        return "\n".join(parts) or f"(no logs in {self.log_dir})"

    # -- helpers --------------------------------------------------------------------------
    def _who(self) -> str:
        return f"the pool user {self.user}" if self.user else f"the user {self.login}"

    def _base_env(self) -> dict[str, str]:
        """The environment of every process of the pool: the pool user's own, with the pool's."""
        env = {k: v for k, v in os.environ.items() if k in INHERITED or k.startswith("LC_")}
        env.update(HOME=self.home, USER=self.login, LOGNAME=self.login)
        env.update(self.env)
        return env

    def _run_as_user(self, argv, timeout, cwd, env) -> subprocess.CompletedProcess:
        """``argv`` as the pool user, with the pool's environment and ``env`` (a value ``None`` removes
        a variable: ``{"CONDOR_CONFIG": None}`` is a process with no HTCondor configuration)."""
        as_user = {}
        if self.user:
            as_user = {"user": self.uid, "group": self.gid, "extra_groups": os.getgrouplist(self.user, self.gid)}
        environment = {k: v for k, v in {**self._base_env(), **(env or {})}.items() if v is not None}
        return subprocess.run(
            argv,
            env=environment,
            cwd=cwd or self.scratch,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            **as_user,
        )


# The submitting side of :meth:`HTCondorPool.call`, run as the pool user.
RESULT_MARK = "\n--- condormagic test result ---\n"
CALLER = """\
import importlib, json, os, sys
sys.path.insert(0, {folder!r})
import cloudpickle
module = importlib.import_module({module!r})
for loaded in list(sys.modules.values()):  # the test modules it uses travel whole too
    if os.path.dirname(getattr(loaded, "__file__", None) or "") == {folder!r}:
        cloudpickle.register_pickle_by_value(loaded)
result = getattr(module, {name!r})(**json.loads(sys.argv[1]))
sys.stdout.write({mark!r} + json.dumps(result))
"""

# The kernel's side of :meth:`HTCondorPool.execute_notebook`, run as the pool user.
EXECUTOR = """\
import sys
import nbformat
from nbclient import NotebookClient

source, target, cwd, timeout, allow_errors = sys.argv[1:]
nb = nbformat.read(source, as_version=4)
client = NotebookClient(
    nb, timeout=int(timeout), kernel_name="python3", allow_errors=allow_errors == "True",
    resources={"metadata": {"path": cwd}},
)
try:
    client.execute()
finally:
    nbformat.write(nb, target)
"""


# -- processes --------------------------------------------------------------------------------
def _exited(process: subprocess.Popen, timeout: float) -> bool:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def _birth(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _process_tree(pid: int) -> list[tuple[int, int]]:
    """``(pid, birth)`` of ``pid`` and of every process under it, from ``/proc``."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            with contextlib.suppress(OSError):
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        birth = _birth(p)
        if birth is not None:
            tree.append((p, birth))
        todo.extend(parents.get(p, []))
    return tree
