"""The HTCondor backend where no pool is needed, or where a two-core pool cannot show it.

What a real pool shows is tested on one (``test_htcondor_pool*.py``). Here: the one-sentence
errors without a pool (no configuration, an unreachable collector, HTCondor's messages
classified), a refused authentication (the stand-in schedd, ``schedd_standin.py``), why jobs
wait in a big heterogeneous pool (real ClassAds of thousands of slots, GPU nodes), the
``--mem-retry`` description, and ``--mem-retry`` on the local backend.
"""

from __future__ import annotations

import sys

import classad2
import cloudpickle
import htcondor2
import numpy as np
import pytest
import rasterio
from schedd_standin import ScheddStandIn

import condormagic as cm
from condormagic import config
from condormagic.backends import describe_default, resolve
from condormagic.backends import htcondor as htc
from condormagic.errors import AuthenticationError, NoScheddError, SubmitRefused

pytestmark = pytest.mark.usefixtures("runs_dir")
cloudpickle.register_pickle_by_value(sys.modules[__name__])

HEIGHT, WIDTH, TILE = 200, 300, 128  # 3 x 2 tiles, the right and bottom ones smaller
SCHEDD = "schedd.standin@vm"


@pytest.fixture
def schedd(monkeypatch):
    """The stand-in, found wherever the backend looks for a schedd."""
    standin = ScheddStandIn()
    monkeypatch.setattr(htc, "locate_schedd", lambda name=None, pool=None, timeout=None: (standin, SCHEDD))
    htc._probe_cache.clear()
    yield standin
    htc._probe_cache.clear()


@pytest.fixture
def deforestation(tmp_path, write_raster):
    """The seed's three sources: a forest polygon and two surface models, in a folder with a space."""
    folder = tmp_path / "eo data"
    folder.mkdir()
    rng = np.random.default_rng(42)
    polygon = (rng.random((HEIGHT, WIDTH)) > 0.3).astype(np.uint8)
    dem1 = rng.normal(300, 40, (HEIGHT, WIDTH)).astype(np.float32)
    dem2 = dem1 + rng.normal(0, 12, (HEIGHT, WIDTH)).astype(np.float32)
    paths = {name: write_raster(folder / f"{name}.tif", a) for name, a in (("p", polygon), ("d1", dem1), ("d2", dem2))}
    src = cm.sources(polygon=paths["p"], dem1=paths["d1"], dem2=paths["d2"], grid="dem2", tile=TILE)
    expected = np.logical_and(polygon > 0, (dem2 - dem1) > 10).astype(np.uint8)
    return src, expected


def Deforestation(img):
    polygon, dem1, dem2 = img[0], img[1], img[2]
    difference = dem2 - dem1
    deforested = np.logical_and(polygon > 0, difference > 10)
    print("Percentage deforestation = %.2f%%" % (100.0 * deforested.sum() / max(1, (polygon > 0).sum())))
    return deforested.astype(np.uint8)


def mosaic(run: cm.Run) -> np.ndarray:
    assert run.output is not None, run.status()
    with rasterio.open(run.output) as ds:
        return ds.read(1)


def test_auto_without_htcondor_configuration_is_local(monkeypatch):
    """This machine has no HTCondor configuration: auto says so and picks local, at once."""
    htc._probe_cache.clear()
    monkeypatch.setitem(config._overrides, "backend", "auto")
    name, why = resolve("auto")
    assert (name, why) == ("local", "backend=auto: no HTCondor configuration was found on this machine")
    assert describe_default().startswith("local (")
    assert "no HTCondor configuration" in describe_default()


def test_no_schedd_is_one_sentence_and_leaves_nothing(runs_dir, deforestation):
    src, _ = deforestation
    with pytest.raises(NoScheddError) as caught:
        cm.submit(Deforestation, src, backend="htcondor")
    message = str(caught.value)
    assert message.startswith("No HTCondor configuration was found on this machine")
    assert "--backend local" in message and message.count(". ") == 0 and "\n" not in message
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_unreachable_pool_is_one_sentence(runs_dir, monkeypatch, deforestation):
    monkeypatch.setitem(config._overrides, "pool", "127.0.0.1:1")
    src, _ = deforestation
    with pytest.raises(
        NoScheddError, match=r"^Could not locate a schedd in the pool at 127\.0\.0\.1:1 .*--backend local"
    ):
        cm.submit(Deforestation, src, backend="htcondor")
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_authentication_failure_is_one_sentence(schedd, runs_dir, deforestation):
    src, _ = deforestation
    run = cm.submit(Deforestation, src, tiles_per_job=6, backend="htcondor")
    schedd.deny = True
    with pytest.raises(AuthenticationError, match=r"^HTCondor did not accept who you are at the schedd .*condor_q"):
        run.remove()
    with pytest.raises(AuthenticationError):
        cm.submit(Deforestation, src, backend="htcondor", force=True)


def test_many_procs_are_steered_by_one_constraint():
    procs = [(42729, p) for p in range(250)] + [(42730, 0)]
    spec = htc.job_spec_constraint(procs)
    expr = classad2.ExprTree(spec)
    assert expr.eval(classad2.ClassAd({"ClusterId": 42729, "ProcId": 249})) is True
    assert expr.eval(classad2.ClassAd({"ClusterId": 42730, "ProcId": 0})) is True
    assert expr.eval(classad2.ClassAd({"ClusterId": 42730, "ProcId": 1})) is False
    assert spec.count("member(") == 2


def test_transfer_refuses_two_sources_of_one_name(schedd, runs_dir, tmp_path, write_raster):
    a, b = tmp_path / "2000", tmp_path / "2015"
    a.mkdir(), b.mkdir()
    data = np.ones((64, 64), np.float32)
    src = cm.sources(dem1=write_raster(a / "dem.tif", data), dem2=write_raster(b / "dem.tif", data), tile=64)
    with pytest.raises(cm.CondorMagicError, match=r"--transfer would put .* \(both are named dem\.tif\)"):
        cm.submit(Deforestation, src, backend="htcondor", transfer=True, check=False)
    assert schedd.calls == [] and not any(runs_dir.iterdir())


# -- HTCondor's messages, as the real pool gave them -------------------------------------------------
@pytest.mark.parametrize(
    ("message", "what", "kind", "says"),
    [
        # A schedd that is shutting down fails the session's resumption: it does not answer, nothing more.
        (
            "Failed to fetch ads from schedd, errmsg=SECMAN:2007:Failed to read resume session response classad "
            "from server",
            "query",
            NoScheddError,
            "could not be reached",
        ),
        # A site's SUBMIT_REQUIREMENT refusal is a refusal, whatever words its reason uses.
        (
            "Unable to commit transaction, SCHEDD:2:project refused is closed; you are not authorized for it",
            "submit",
            SubmitRefused,
            "refused the submission: project refused is closed; you are not authorized for it;",
        ),
        (
            'SECMAN:2010:Received "DENIED" from server for user eo using method IDTOKENS.',
            "query",
            AuthenticationError,
            "",
        ),
        ("Failed to connect to schedd at <127.0.0.1:9618>", "submit", NoScheddError, "could not be reached"),
    ],
)
def test_htcondor_messages_are_classified(message, what, kind, says):
    error = htc._schedd_error(htcondor2.HTCondorException(message), "submit.example.org", what)
    assert type(error) is kind
    assert says in str(error) and "SCHEDD:2" not in str(error) and "\n" not in str(error)


# -- why jobs wait, in a pool a two-core machine cannot be ------------------------------------------
def _slot(name, cpus, memory_mb, disk_gb, gpus=0, opsys="AlmaLinux9", used_cpus=0, kind="Partitionable"):
    return classad2.ClassAd(
        {
            "Name": name,
            "Machine": name.split("@")[-1],
            "SlotType": kind,
            "PartitionableSlot": kind == "Partitionable",
            "Cpus": cpus - used_cpus,
            "TotalSlotCpus": cpus,
            "Memory": memory_mb,
            "TotalSlotMemory": memory_mb,
            "Disk": disk_gb * 1024**2,
            "TotalSlotDisk": disk_gb * 1024**2,
            "GPUs": gpus,
            "TotalSlotGPUs": gpus,
            "Arch": "X86_64",
            "OpSys": "LINUX",
            "OpSysAndVer": opsys,
            "HasFileTransfer": True,
            "FileSystemDomain": "eos.example.org",
        }
    )


def _job(cpus=1, memory_mb=2048, disk_kb=1024**2, gpus=None, requirements=None):
    """A job ad as condor_submit makes it (the requirements it adds are the real pool's)."""
    ad = classad2.ClassAd(
        {"RequestCpus": cpus, "RequestMemory": memory_mb, "RequestDisk": disk_kb, "FileSystemDomain": "eos.example.org"}
    )
    if gpus is not None:
        ad["RequestGPUs"] = gpus
    expr = (
        '(TARGET.Arch == "X86_64") && (TARGET.OpSys == "LINUX") && (TARGET.Memory >= RequestMemory) && '
        "((TARGET.FileSystemDomain == MY.FileSystemDomain) || (TARGET.HasFileTransfer))"
    )
    ad["Requirements"] = classad2.ExprTree(f"({requirements}) && {expr}" if requirements else expr)
    return ad


@pytest.fixture(scope="module")
def big_pool():
    """2,500 slots: 300 CPU nodes (8 CPUs, 32 GB, some busy), 10 GPU nodes on AlmaLinux 8, 2,190 static slots."""
    slots = [_slot(f"slot1@cpu{i}", 8, 32768, 200, used_cpus=i % 9) for i in range(300)]
    slots += [_slot(f"slot1@gpu{i}", 64, 262144, 1000, gpus=2, opsys="AlmaLinux8") for i in range(10)]
    slots += [_slot(f"slot{i}@old{i // 8}", 1, 2048, 20, kind="Static") for i in range(2190)]
    slots += [_slot("slot1_1@cpu0", 2, 4096, 10, kind="Dynamic")]  # a piece of cpu0: not a slot of its own
    return slots


@pytest.mark.parametrize(
    ("job", "requirements", "reason"),
    [
        (_job(cpus=128), None, "no slot in the pool has 128 CPUs (the largest has 64)"),
        (_job(gpus=3), None, "no slot in the pool has 3 GPUs (the largest has 2)"),
        (_job(memory_mb=300 * 1024, gpus=1), None, "no slot in the pool has 300 GB of memory (the largest has 256 GB)"),
        (_job(disk_kb=2 * 1024**3), None, "no slot in the pool has 2 TB of disk (the largest has 1000 GB)"),
        (
            _job(cpus=100, memory_mb=1024**2),
            None,
            "no slot in the pool has 100 CPUs (the largest has 64); "
            "no slot in the pool has 1 TB of memory (the largest has 256 GB)",
        ),
        (
            _job(requirements='OpSysAndVer == "Windows11"'),
            'OpSysAndVer == "Windows11"',
            'no slot in the pool matches --requirements OpSysAndVer == "Windows11"',
        ),
        # GPU nodes run AlmaLinux 8: a GPU job that asks for AlmaLinux 9 fits no single slot.
        (
            _job(gpus=1, requirements='OpSysAndVer == "AlmaLinux9"'),
            'OpSysAndVer == "AlmaLinux9"',
            "no slot in the pool has all of 1 CPU, 2 GB of memory, 1 GB of disk, 1 GPU and matches these jobs' "
            "requirements",
        ),
        # What fits somewhere only waits for its turn (a busy node still has 8 CPUs in all).
        (_job(cpus=8, memory_mb=32768), None, None),
        (_job(cpus=16, gpus=2, requirements='OpSysAndVer == "AlmaLinux8"'), 'OpSysAndVer == "AlmaLinux8"', None),
    ],
)
def test_why_jobs_wait_in_a_big_pool(big_pool, job, requirements, reason):
    from condormagic.backends.waiting import explain

    assert explain(job, big_pool, requirements) == reason


def test_an_empty_pool_says_so():
    from condormagic.backends.waiting import explain

    assert explain(_job(), []) == "the pool has no execute slots (condor_status lists none)"


# -- --mem-retry -----------------------------------------------------------------------------------
def test_mem_retry_is_htcondors_own_commands():
    from condormagic.backends.description import build_description, site_options
    from condormagic.resources import parse_mem_retry

    def commands(mem, retry):
        options = {"cpus": 1, "mem": mem, "mem_retry": parse_mem_retry(retry, mem)}
        return {k: v for k, v in build_description("/runs/r", "r", "r", options).items() if "retry_request" in k}

    assert commands(6144, "16GB") == {
        "retry_request_memory_increase": "RequestMemory * 2",
        "retry_request_memory_max": "16384",
    }
    assert commands(6144, "16 GB x1.5")["retry_request_memory_increase"] == "int(RequestMemory * 1.5)"
    assert commands(6144, "16GB +2GB")["retry_request_memory_increase"] == "RequestMemory + 2048"
    assert commands(6144, None) == {}
    # A retry that already asks for the most has nothing left to grow.
    options = {"cpus": 1, "mem": 20000, "mem_retry": {"max": 16384, "factor": 2.0}}
    assert "retry_request_memory_max" not in build_description("/runs/r", "r", "r", options)
    # HTCondor reads them as it reads its own (the bindings parse the description).
    assert htcondor2.Submit(build_description("/runs/r", "r", "r", {"mem": 100, "mem_retry": {"max": 400}}))
    with pytest.raises(cm.CondorMagicError, match=r"^--mem-retry 4GB is not more than --mem \(6144 MB\)"):
        parse_mem_retry("4GB", 6144)
    with pytest.raises(
        cm.CondorMagicError, match=r"^--submit retry_request_memory_max is set by condormagic.*--mem-retry"
    ):
        site_options(submit=["retry_request_memory_max=4000"])


def Greedy(img):
    """The seed's function, holding 300 MB for a moment on the first tile (more than --mem 256MB)."""
    import time

    if img.window.row_off == 0 and img.window.col_off == 0:
        ballast = np.ones(300 * 2**20, np.uint8)
        time.sleep(1.5)
        del ballast
    return Deforestation(img)


def test_mem_retry_on_the_local_backend(runs_dir, deforestation):
    """The local runner does what HTCondor does: over its memory, the job runs again with twice as much."""
    src, expected = deforestation
    run = cm.submit(Greedy, src, mem="256MB", mem_retry="1GB", tiles_per_job=6, backend="local", check=False)
    run.wait(timeout=120)
    (job,) = run.jobs()
    memory = [
        int(e["ExecuteProps"]["Memory"])
        for e in htcondor2.JobEventLog(str(run.path / "events.log")).events(0)
        if e.type == 1
    ]
    assert run.status()["completed"] == 1 and job.starts == 2, (run.status(), job)
    assert memory == [256, 512]
    np.testing.assert_array_equal(mosaic(run), expected)
