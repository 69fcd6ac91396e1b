"""The HTCondor backend: a run's jobs as one cluster per submission, through ``htcondor2``.

The schedd is the local one unless the ``schedd`` and ``pool`` settings name another
(``%condor_config schedd=NAME pool=HOST:PORT``), found through the collector. A run
records where it went (its options keep ``schedd`` and ``pool``), so steering it later
from another process reaches the same schedd.

Watching needs no schedd: the schedd writes the run's ``events.log``, which
:mod:`condormagic.rundir.state` reads as for the local backend. :meth:`HTCondorBackend.query`
asks the schedd, on demand and in one query for the whole run, what the log cannot
say: why a job is idle, where it runs, how much memory it uses.
"""

from __future__ import annotations

import contextlib
import os
import re
import time

from ..errors import AuthenticationError, CondorMagicError, NoScheddError, SchedulerError, SubmitRefused
from ..resources import Resources
from ..rundir.clusters import itemdata, record_cluster
from ..rundir.layout import RunDir
from ..rundir.manifest import Manifest

# Jobs a pool runs at once, for the default tiles per job (about four jobs per slot).
POOL_SLOTS = 250
# Seconds ``backend = "auto"`` waits for a collector before using the local backend.
PROBE_TIMEOUT = 3
# Seconds ``--backend htcondor`` waits for a collector before saying it is unreachable.
LOCATE_TIMEOUT = 15
# What a query asks the schedd about each queued job of a run.
PROJECTION = [
    "ClusterId",
    "ProcId",
    "JobStatus",
    "HoldReason",
    "HoldReasonCode",
    "RemoteHost",
    "MemoryUsage",
    "ResidentSetSize",
    "LastRejMatchReason",
    "NumJobStarts",
]
JOB_STATUS = {
    1: "idle",
    2: "running",
    3: "removed",
    4: "completed",
    5: "held",
    6: "transferring output",
    7: "suspended",
}
_ACTIONS = {"hold": ("Hold", "Held"), "release": ("Release", "Released"), "remove": ("Remove", "Removed")}
# A refusal of who the user is. "SECMAN" alone is not one: a schedd that is going away fails the
# session's resumption with SECMAN:2007 ("Failed to read resume session response").
_AUTH = re.compile(r"authenticat|DENIED|PERMISSION|not authorized", re.IGNORECASE)
_UNREACHABLE = re.compile(
    r"connect|communicat|locate|timed? ?out|connection refused|failed to (read|send)|resume session|no route|errno",
    re.IGNORECASE,
)
# What a schedd that read the submission and refused it says first ("SCHEDD:2:" then its reason,
# such as a site's SUBMIT_REQUIREMENT reason, which may well contain "refused" or "permission").
_REFUSAL = re.compile(r"^(Unable to commit transaction,?\s*)?SCHEDD:\d+:\s*", re.IGNORECASE)
# Seconds the pool's slot ads are kept for explaining why jobs wait (a pool changes slowly).
MACHINES_TTL = 30
# Seconds a release waits at most for held jobs that are still being stopped (see HTCondorBackend._release).
RELEASE_WAIT = 30


def has_configuration() -> bool:
    """Whether this machine has an HTCondor configuration (one that names a collector)."""
    import htcondor2

    return htcondor2.param.get("COLLECTOR_HOST") is not None


def locate_schedd(name: str | None = None, pool: str | None = None, timeout: float | None = None):
    """Find a schedd; return ``(schedd, its name)``.

    Parameters
    ----------
    name : str, optional
        The schedd's name as the collector knows it; default the local schedd.
    pool : str, optional
        ``HOST[:PORT]`` of the pool's collector; default the configured one.
    timeout : float, optional
        Seconds to wait for the collector; default HTCondor's own (``QUERY_TIMEOUT``).

    Raises
    ------
    NoScheddError
        No HTCondor configuration, or no such schedd, or the collector did not answer.
    AuthenticationError
        The collector did not accept who the user is.
    """
    import htcondor2

    if pool is None and not has_configuration():
        raise NoScheddError(
            "No HTCondor configuration was found on this machine (no CONDOR_CONFIG, no /etc/condor/condor_config): "
            "run with --backend local, or set pool=HOST:PORT with %condor_config."
        )
    where = f"the pool at {pool}" if pool else "this machine's pool"
    with _query_timeout(timeout):
        try:
            collector = htcondor2.Collector(pool) if pool else htcondor2.Collector()
            if name:
                ad = collector.locate(htcondor2.DaemonType.Schedd, name)
            else:
                ad = collector.locate(htcondor2.DaemonType.Schedd)
        except htcondor2.HTCondorException as exc:
            if _AUTH.search(str(exc)):
                raise _auth_error(exc, where) from None
            what = f"the schedd {name!r}" if name else "a schedd"
            raise NoScheddError(
                f"Could not locate {what} in {where} ({_one_line(exc)}): check that `condor_q` works here, "
                "or run with --backend local."
            ) from None
    if ad is None:
        raise NoScheddError(
            f"No schedd named {name!r} is known to {where}: `condor_status -schedd` lists them; "
            "or run with --backend local."
        )
    return htcondor2.Schedd(ad), str(ad.get("Name") or name or "local schedd")


@contextlib.contextmanager
def _query_timeout(seconds: float | None):
    """Bound the collector query (``QUERY_TIMEOUT``), then put the setting back."""
    if seconds is None:
        yield
        return
    import htcondor2

    old = htcondor2.param.get("QUERY_TIMEOUT")
    htcondor2.param["QUERY_TIMEOUT"] = str(max(1, int(round(seconds))))
    try:
        yield
    finally:
        if old is None:
            del htcondor2.param["QUERY_TIMEOUT"]
        else:
            htcondor2.param["QUERY_TIMEOUT"] = str(old)


_probe_cache: dict[tuple, tuple[float, bool, str]] = {}


def probe(name: str | None = None, pool: str | None = None, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """Whether a schedd can be located, quickly; and which one, or why not, in a few words.

    The answer is kept for a minute, so that each cell does not ask the collector again.
    """
    key = (name, pool)
    cached = _probe_cache.get(key)
    if cached and time.monotonic() - cached[0] < 60:
        return cached[1], cached[2]
    try:
        if pool is None and not has_configuration():
            answer = (False, "no HTCondor configuration was found on this machine")
        else:
            answer = (True, f"schedd {locate_schedd(name, pool, timeout)[1]}")
    except ImportError:
        answer = (False, "the htcondor2 bindings are not installed")
    except SchedulerError as exc:
        where = f"the pool at {pool}" if pool else "this machine's pool"
        why = "HTCondor did not accept your credentials" if isinstance(exc, AuthenticationError) else "no answer"
        answer = (False, f"no schedd could be located in {where} ({why})")
    _probe_cache[key] = (time.monotonic(), *answer)
    return answer


class HTCondorBackend:
    """Submits, steers and asks about a run's jobs on an HTCondor schedd.

    Parameters
    ----------
    schedd, pool : str, optional
        Where to submit new runs: a schedd name and the pool's collector; default the
        ``schedd`` and ``pool`` settings (the local schedd when both are unset). A run
        already submitted is always steered on the schedd it went to.
    """

    name = "htcondor"
    # A new Python on the execute node, after the schedd's and the shadow's own start.
    min_job_pixels = 16 * 1024 * 1024

    def __init__(self, schedd: str | None = None, pool: str | None = None):
        from .. import config

        self.schedd_name = schedd if schedd is not None else config.get("schedd")
        self.pool = pool if pool is not None else config.get("pool")
        self._connections: dict[tuple, tuple] = {}

    # -- where ----------------------------------------------------------------------------
    def _connect(self, manifest: Manifest | None = None, timeout: float = LOCATE_TIMEOUT):
        """``(schedd, name)`` for a run (where it was submitted) or for new runs."""
        if manifest is not None and ("schedd" in manifest.options or "pool" in manifest.options):
            key = (manifest.options.get("schedd"), manifest.options.get("pool"))
        else:
            key = (self.schedd_name, self.pool)
        if key not in self._connections:
            self._connections[key] = locate_schedd(*key, timeout=timeout)
        return self._connections[key]

    def describe(self) -> str:
        """``htcondor (schedd NAME, pool HOST:PORT)``, or why no schedd can be used."""
        try:
            return f"htcondor (schedd {self._connect()[1]}, pool {self.pool or collector_host()})"
        except SchedulerError as exc:
            return f"htcondor (unavailable: {exc})"

    def slots(self, cpus: int) -> int:
        """Jobs the pool may run at once, for the default tiles per job."""
        return POOL_SLOTS

    def check(self, resources: Resources) -> str | None:
        """Nothing is refused before submitting: a pool's slots change, and the monitor says why a job waits."""
        return None

    # -- submit ---------------------------------------------------------------------------
    def submit(self, layout: RunDir, manifest: Manifest, jobs: list[int]) -> int:
        """Queue ``jobs`` as one new cluster; return its id.

        Records ``clusters/ID.json`` (which job each proc runs) and the submit file.
        """
        from .description import build_submit, describe_run

        schedd, schedd_name = self._connect(manifest)
        if manifest.options.get("schedd") != schedd_name:
            # Where the run went, by name: it is steered there later, from any process, and the
            # views say it. "collector" is only shown; "pool" stays what the user set.
            manifest.options["schedd"] = schedd_name
            manifest.options["collector"] = manifest.options.get("pool") or collector_host()
            manifest.save(layout.manifest)
        inputs = prepare_transfer(layout, manifest) if manifest.options.get("transfer") else None
        description = describe_run(layout, manifest, inputs=inputs)
        submit = build_submit(description)
        result = self._call(schedd_name, "submit", schedd.submit, submit, itemdata=iter(itemdata(jobs)))
        cluster = int(result.cluster())
        try:
            record_cluster(layout, cluster, self.name, description, jobs)
        except BaseException:
            # Jobs the run directory does not know about would run unseen: take them back.
            with contextlib.suppress(Exception):
                schedd.act(_job_action("remove"), str(cluster))
            raise
        return cluster

    # -- steer ----------------------------------------------------------------------------
    def act(self, layout: RunDir, manifest: Manifest, action: str, procs: list[tuple[int, int]] | None) -> int:
        """Hold, release or remove the run's jobs as the schedd sees them now.

        The event log lags the schedd (a held running job's event arrives only once it is
        vacated), so the jobs are chosen by a constraint on the run's attribute and the job
        status the action applies to, restricted to ``procs`` when given. Returns how many
        jobs the schedd acted on.
        """
        import classad2

        schedd, schedd_name = self._connect(manifest)
        constraint = f"CondormagicRun == {classad2.quote(manifest.id)} && {_STATUS_FOR[action]}"
        if procs is not None:
            if not procs:
                return 0
            constraint += f" && ({job_spec_constraint(procs)})"
        if action == "release":
            return self._release(schedd, schedd_name, constraint)
        past = _ACTIONS[action][1]
        result = self._call(
            schedd_name,
            action,
            schedd.act,
            _job_action(action),
            constraint,
            reason=f"{past} by the user with condormagic",
        )
        return _successes(result)

    def _release(self, schedd, schedd_name: str, constraint: str) -> int:
        """Release the held jobs of ``constraint`` once each is stopped; return how many.

        A job held while it runs is held at once, but stopped only seconds later (its shadow
        lives until then). Released meanwhile, it is idle in the schedd's queue yet never
        matched again (seen with HTCondor 25.14). So jobs still stopping (``CurrentHosts > 0``)
        are waited for, up to :data:`RELEASE_WAIT` seconds, and released as each stops; the log
        then says evicted, held, released, in that order.
        """
        released = 0
        deadline = time.monotonic() + RELEASE_WAIT
        projection = ["ClusterId", "ProcId", "CurrentHosts"]
        while True:
            ads = self._call(schedd_name, "release", schedd.query, constraint=constraint, projection=projection)
            stopped = [(int(ad["ClusterId"]), int(ad["ProcId"])) for ad in ads if not ad.get("CurrentHosts")]
            if stopped:
                result = self._call(
                    schedd_name,
                    "release",
                    schedd.act,
                    _job_action("release"),
                    job_spec_constraint(stopped),
                    reason="Released by the user with condormagic",
                )
                released += _successes(result)
            if len(stopped) == len(ads) or time.monotonic() > deadline:
                return released
            time.sleep(0.25)

    # -- ask ------------------------------------------------------------------------------
    def query(self, layout: RunDir, manifest: Manifest) -> dict[tuple[int, int], dict]:
        """What the schedd knows of the run's queued jobs, in one query.

        Returns
        -------
        dict
            ``(cluster, proc)`` to a dict with the attributes of :data:`PROJECTION` that
            the job has (``MemoryUsage`` evaluated, in MB), and ``state`` in words.
        """
        import classad2

        schedd, schedd_name = self._connect(manifest)
        constraint = f"CondormagicRun == {classad2.quote(manifest.id)}"
        ads = self._call(schedd_name, "query", schedd.query, constraint=constraint, projection=PROJECTION)
        out = {}
        for ad in ads:
            info = {}
            for attr in PROJECTION[2:]:
                if attr in ad:
                    value = ad.eval(attr)
                    if not isinstance(value, classad2.Value):  # Undefined or Error
                        info[attr] = value
            info["state"] = JOB_STATUS.get(info.get("JobStatus"), "unknown")
            out[(int(ad.eval("ClusterId")), int(ad.eval("ProcId")))] = info
        return out

    def waiting(self, layout: RunDir, manifest: Manifest, clusters: list[int]) -> dict[int, str]:
        """Why the run's idle jobs of these clusters wait, where no slot of the pool could ever run them.

        The jobs of a cluster ask for the same, so one idle job's ad is asked of the schedd per
        cluster, and set against the pool's slot ads (kept :data:`MACHINES_TTL` seconds; see
        :mod:`.waiting`). With no cluster given, one small query only: whether the schedd answers.

        Returns
        -------
        dict
            ``{cluster: reason}`` for the clusters whose idle jobs cannot start as they are.

        Raises
        ------
        NoScheddError
            The schedd does not answer (stopped, restarting, unreachable): one sentence.
        AuthenticationError
            It does not accept who the user is.
        """
        import classad2
        import htcondor2

        from .waiting import explain, referenced

        name = manifest.options.get("schedd") or self.schedd_name or "of this machine"
        run = f"CondormagicRun == {classad2.quote(manifest.id)}"
        try:
            schedd, name = self._connect(manifest, timeout=PROBE_TIMEOUT)  # a view waits on this: briefly
            if not clusters:
                schedd.query(constraint=run, projection=["ProcId"], limit=1)
                return {}
            jobs = {}
            for cluster in sorted(set(clusters)):
                ads = schedd.query(constraint=f"{run} && ClusterId == {int(cluster)} && JobStatus == 1", limit=1)
                if ads:
                    jobs[cluster] = ads[0]
        except AuthenticationError:
            raise
        except SchedulerError as exc:  # not located: a schedd that stops leaves the collector
            self._connections.clear()
            why = "the pool's collector does not list it"
            if str(exc).startswith("No HTCondor configuration"):
                why = "this machine has no HTCondor configuration, and the run names no pool"
            raise NoScheddError(_not_answering(name, why)) from None
        except htcondor2.HTCondorException as exc:
            self._connections.clear()
            if _AUTH.search(str(exc)):
                raise _auth_error(exc, f"the schedd {name}") from None
            raise NoScheddError(_not_answering(name, _one_line(exc).rstrip("."))) from None
        requirements = manifest.options.get("requirements")
        out = {}
        for cluster, job in jobs.items():
            machines = self._machines(manifest, referenced(job, [requirements]))
            reason = None if machines is None else explain(job, machines, requirements)
            if reason:
                out[cluster] = reason
        return out

    def _machines(self, manifest: Manifest, attributes: list[str]):
        """The pool's slot ads (not dynamic slots), with ``attributes``; ``None`` if the collector fails."""
        import htcondor2

        from .waiting import MACHINE_ATTRIBUTES, SLOT_CONSTRAINT

        pool = manifest.options.get("pool")
        projection = tuple(sorted(set(MACHINE_ATTRIBUTES) | set(attributes)))
        key = (pool, projection)
        cached = _machines_cache.get(key)
        if cached and time.monotonic() - cached[0] < MACHINES_TTL:
            return cached[1]
        try:
            collector = htcondor2.Collector(pool) if pool else htcondor2.Collector()
            ads = collector.query(htcondor2.AdType.Startd, constraint=SLOT_CONSTRAINT, projection=list(projection))
        except htcondor2.HTCondorException:
            return None
        _machines_cache[key] = (time.monotonic(), ads)
        return ads

    def watch(self, layout: RunDir, manifest: Manifest) -> str | None:
        """The schedd looks after its own jobs."""
        return None

    def _call(self, schedd_name: str, what: str, method, *args, **kwargs):
        import htcondor2

        try:
            return method(*args, **kwargs)
        except htcondor2.HTCondorException as exc:
            # A schedd that restarted listens elsewhere: the next call locates it again.
            self._connections.clear()
            raise _schedd_error(exc, schedd_name, what) from None


_machines_cache: dict[tuple, tuple[float, list]] = {}


def collector_host() -> str:
    """The configured pool's collector (``COLLECTOR_HOST``), as the views name the pool."""
    import htcondor2

    return str(htcondor2.param.get("COLLECTOR_HOST") or "unknown")


def _not_answering(name: str, why: str) -> str:
    return (
        f"The schedd {name} does not answer ({why}): the run's jobs stay in its queue, "
        "and condormagic asks again in a few seconds."
    )


# The jobs each action applies to, by the schedd's JobStatus (1 idle, 2 running, 5 held, 7 suspended).
_STATUS_FOR = {
    "hold": "(JobStatus == 1 || JobStatus == 2 || JobStatus == 7)",
    "release": "JobStatus == 5",
    "remove": "(JobStatus == 1 || JobStatus == 2 || JobStatus == 5 || JobStatus == 7)",
}


def _job_action(action: str):
    import htcondor2

    return getattr(htcondor2.JobAction, _ACTIONS[action][0])


def _successes(result) -> int:
    try:
        return int(result.get("TotalSuccess", 0))
    except (AttributeError, TypeError, ValueError):
        return 0


def job_spec_constraint(procs: list[tuple[int, int]]) -> str:
    """A constraint matching these ``(cluster, proc)`` pairs: one ``member`` test per cluster, OR-ed."""
    by_cluster: dict[int, list[int]] = {}
    for c, p in procs:
        by_cluster.setdefault(int(c), []).append(int(p))
    return " || ".join(
        f"(ClusterId == {c} && member(ProcId, {{{', '.join(map(str, sorted(ps)))}}}))"
        for c, ps in sorted(by_cluster.items())
    )


def _schedd_error(exc: Exception, schedd_name: str, what: str) -> SchedulerError:
    message = _one_line(exc)
    refusal = _REFUSAL.match(message)
    if what == "submit" and (refusal or not (_AUTH.search(message) or _UNREACHABLE.search(message))):
        # The schedd's own words (a site's SUBMIT_REQUIREMENT reason, say), without its codes.
        words = message[refusal.end() :] if refusal else message
        return SubmitRefused(
            f"The schedd {schedd_name} refused the submission: {words.rstrip('.')}; "
            "change what it names and submit again (submit.sub in the run directory shows what was sent)."
        )
    if _AUTH.search(message):
        return _auth_error(exc, f"the schedd {schedd_name}")
    if _UNREACHABLE.search(message):
        return NoScheddError(
            f"The schedd {schedd_name} could not be reached ({message.rstrip('.')}): check that `condor_q` works "
            "here, or run with --backend local."
        )
    return SchedulerError(f"The schedd {schedd_name} could not {what} the jobs: {message.rstrip('.')}.")


def _auth_error(exc: Exception, where: str) -> AuthenticationError:
    return AuthenticationError(
        f"HTCondor did not accept who you are at {where} ({_one_line(exc).rstrip('.')}): check that `condor_q` "
        "works in a terminal here (a valid token, Kerberos ticket or IDTOKEN), then try again."
    )


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# -- pools without a shared file system ---------------------------------------------------
def prepare_transfer(layout: RunDir, manifest: Manifest) -> list[str]:
    """Write ``transfer/manifest.json`` (sources by base name) and return the files to send.

    The files are every local source with the files GDAL reads with it (``.aux.xml``,
    ``.ovr``, world files); remote sources (``/vsicurl/``, URLs) are read where they are.

    Raises
    ------
    CondorMagicError
        Two sources have the same base name (they would land on each other).
    """
    import copy

    import rasterio

    from ..tiling.source import is_remote

    moved = copy.deepcopy(manifest)
    inputs: list[str] = []
    landed: dict[str, str] = {}
    for source in moved.sources:
        path = source["path"]
        if is_remote(path):
            continue
        with rasterio.open(path) as ds:
            files = [path] + [f for f in ds.files if os.path.abspath(f) != os.path.abspath(path)]
        for f in files:
            base = os.path.basename(f)
            if landed.get(base, f) != f:
                raise CondorMagicError(
                    f"--transfer would put {landed[base]} and {f} in the same place (both are named {base}); "
                    "rename one of them."
                )
            if base not in landed:
                landed[base] = f
                inputs.append(os.path.abspath(f))
        source["path"] = os.path.basename(path)
    layout.transfer_manifest.parent.mkdir(exist_ok=True)
    moved.save(layout.transfer_manifest)
    return inputs
