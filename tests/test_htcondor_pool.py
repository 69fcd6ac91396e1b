"""condormagic on a real one-machine HTCondor pool (the ``htcondor_pool`` fixture): nothing stands in.

The submitting side runs as the pool user, as a notebook user would: a kernel
(``pool.execute_notebook``), or a process calling one of the ``on_pool_*`` functions below
(``pool.call``), which returns what it saw as JSON. The test process only prepares and checks.
Steering (hold, release, remove, eviction, a schedd restart) is in ``test_htcondor_pool_steering.py``.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import sys
import tempfile
import threading

import numpy as np
import pytest
import rasterio

pytestmark = pytest.mark.htcondor_pool

TESTS = os.path.dirname(os.path.abspath(__file__))
HEIGHT, WIDTH, TILE = 256, 384, 128  # 2 x 3 tiles


def Deforestation(img):
    """The seed's function (with a print, which goes to the job's stdout)."""
    polygon, dem1, dem2 = img[0], img[1], img[2]
    difference = dem2 - dem1
    deforested = np.logical_and(polygon > 0, difference > 10)
    print("Percentage deforestation = %.2f%%" % (100.0 * deforested.sum() / max(1, (polygon > 0).sum())))
    return deforested.astype(np.uint8)


@pytest.fixture(scope="module")
def seed(htcondor_pool):
    """The seed's three sources in a folder the pool user can read, and the whole-array result."""
    sys.path.insert(0, TESTS)
    from conftest import write_raster

    folder = htcondor_pool.make_user_dir(tempfile.mkdtemp(prefix="seed-", dir=htcondor_pool.scratch))
    rng = np.random.default_rng(42)
    polygon = (rng.random((HEIGHT, WIDTH)) > 0.3).astype(np.uint8)
    dem1 = rng.normal(300, 40, (HEIGHT, WIDTH)).astype(np.float32)
    dem2 = dem1 + rng.normal(0, 12, (HEIGHT, WIDTH)).astype(np.float32)
    arrays = {"polygon": polygon, "dem1": dem1, "dem2": dem2}
    paths = {name: str(write_raster(folder / f"{name}.tif", a)) for name, a in arrays.items()}
    return {"folder": folder, "paths": paths, "expected": Deforestation([polygon, dem1, dem2])}


def until(condition, timeout: float = 30, every: float = 0.3):
    """Wait until ``condition()`` is true; fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not true after {timeout} s"
        time.sleep(every)


def mosaic(path: str) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def runs_env(pool_tmp) -> dict:
    return {"CONDORMAGIC_RUNS_DIR": str(pool_tmp / "runs")}


# -- the submitting side (run as the pool user by pool.call) --------------------------------------
def _sources(paths: dict, tile: int = TILE):
    import condormagic as cm

    return cm.sources(polygon=paths["polygon"], dem1=paths["dem1"], dem2=paths["dem2"], grid="dem2", tile=tile)


def _queue(run) -> list[dict]:
    """The run's jobs as the schedd has them now."""
    import classad2
    import htcondor2

    ads = htcondor2.Schedd().query(
        constraint=f"CondormagicRun == {classad2.quote(run.id)}", projection=["ClusterId", "ProcId", "JobStatus"]
    )
    return sorted(({k: int(ad[k]) for k in ("ClusterId", "ProcId", "JobStatus")} for ad in ads), key=str)


# -- the seed's cell, in a kernel ------------------------------------------------------------------
SEED_CELL = """\
%%condor --cpus 1 --mem 1GB --mem-retry 2GB --name DEFORESTATION --tiles-per-job 1 --wait
def Deforestation(img):
    polygon, dem1, dem2 = img[0], img[1], img[2]
    difference = dem2 - dem1
    deforested = np.logical_and(polygon > 0, difference > 10)
    print("Percentage deforestation = %.2f%%" % (100.0 * deforested.sum() / max(1, (polygon > 0).sum())))
    return deforested.astype(np.uint8)
"""
REPORT = """\
import json, os, getpass
import condormagic as cm
from condormagic.display.cards import runs_html
from condormagic.display.monitor import Monitor
run = cm.run("DEFORESTATION")
print(json.dumps({
    "status": run.status(), "output": run.output, "options": run.options, "user": getpass.getuser(),
    "tiles": [os.stat(p).st_uid for p in (run.path / "tiles").iterdir()],
    "submit": (run.path / "submit.sub").read_text(), "log": run.logs(0)[0],
    "dashboard": runs_html([run]), "header": Monitor(run, autostart=False).header.value,
}))
"""


def test_the_seed_cell_runs_on_the_pool_through_a_kernel(htcondor_pool, pool_tmp, seed):
    """``backend=auto`` finds the pool's schedd; the seed's cell (with the pool's 2 CPUs: ``--cpus 1``)
    runs one job per tile there as the notebook's user; the mosaic is the whole-array result."""
    pool, paths = htcondor_pool, seed["paths"]
    cells = [
        "%load_ext condormagic",
        "import numpy as np\n%condor_config backend=auto",
        f"%condor_sources polygon={paths['polygon']} dem1={paths['dem1']} dem2={paths['dem2']} --grid dem2 "
        f"--tile {TILE}",
        SEED_CELL,
        REPORT,
    ]
    nb = pool.execute_notebook(cells, cwd=pool_tmp, timeout=180, env=runs_env(pool_tmp))
    loaded = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    schedd = pool.schedd_name
    assert f"%%condor runs on htcondor (schedd {schedd}, pool {pool.collector})" in loaded, loaded
    assert f"backend=auto: schedd {schedd}" in loaded

    result = json.loads(nb.cells[-1].outputs[-1]["text"])
    assert result["status"]["completed"] == 6, result["status"]
    assert (result["options"]["backend"], result["options"]["schedd"]) == ("htcondor", schedd)
    assert result["options"]["backend_reason"] == f"backend=auto: schedd {schedd}"
    assert result["user"] == pool.login and set(result["tiles"]) == {pool.uid}
    assert "Percentage deforestation" in result["log"]
    # The dashboard's table and the monitor's header say where the run went.
    where = f"htcondor (schedd {schedd}, pool {pool.collector})"
    assert where in result["dashboard"] and f"backend <b>{where}</b>" in result["header"]
    # --mem-retry reached HTCondor as its own commands.
    assert "retry_request_memory_max = 2048" in result["submit"]
    assert "retry_request_memory_increase = RequestMemory * 2" in result["submit"]
    np.testing.assert_array_equal(mosaic(result["output"]), seed["expected"])


# -- a function failing on some tiles, then retried --------------------------------------------
def Refusing(img):
    """The seed's function, refusing the right-hand column of tiles while the flag file exists."""
    import os

    if img.window.col_off >= 256 and os.path.exists(FLAG):
        raise ValueError("right-hand tile refused on purpose")
    return Deforestation(img)


FLAG = ""  # set by on_pool_failure_then_retry, in the pool user's process


def on_pool_failure_then_retry(paths: dict, flag: str) -> dict:
    global FLAG
    import condormagic as cm

    FLAG = flag
    open(flag, "w").close()
    run = cm.submit(Refusing, _sources(paths), cpus=1, mem="512MB", tiles_per_job=1, backend="htcondor", check=False)
    run.wait(timeout=120)
    first = {"status": run.status(), "failed": {j.job: j.reason for j in run.jobs() if j.state == "failed"}}
    os.remove(flag)
    retried = run.retry()
    run.wait(timeout=120)
    combined = {j.job: [j.state, j.cluster, j.attempts] for j in run.jobs()}
    return {**first, "retried": retried, "clusters": run.clusters, "jobs": combined, "output": run.output}


def test_failed_tiles_say_why_and_a_retry_completes_as_a_second_cluster(htcondor_pool, pool_tmp, seed):
    out = htcondor_pool.call(
        on_pool_failure_then_retry, paths=seed["paths"], flag=str(pool_tmp / "refuse"), env=runs_env(pool_tmp)
    )
    # Jobs 2 and 5 are the right-hand column: they failed with the user's own error, the others completed.
    assert out["status"]["completed"] == 4 and out["status"]["failed"] == 2, out
    assert sorted(out["failed"]) == ["2", "5"]
    assert all("ValueError: right-hand tile refused on purpose" in r for r in out["failed"].values()), out
    # The retry queued only those two, as a second cluster; they completed there.
    assert out["retried"] == [2, 5] and len(out["clusters"]) == 2
    first, second = out["clusters"]
    assert out["jobs"]["2"] == ["completed", second, 2] and out["jobs"]["0"] == ["completed", first, 1]
    np.testing.assert_array_equal(mosaic(out["output"]), seed["expected"])


# -- a request no slot can match ------------------------------------------------------------
IMPOSSIBLE = {
    "cpus": ({"cpus": 3}, "no slot in the pool has 3 CPUs (the largest has 2)"),
    "memory": ({"mem": "8GB"}, "no slot in the pool has 8 GB of memory (the largest has 4 GB)"),
    "gpus": ({"gpus": 1}, "no slot in the pool has a GPU (the pool has none)"),
    "disk": ({"disk": "100TB"}, "no slot in the pool has 100 TB of disk (the largest has "),
    "requirements": (
        {"requirements": 'OpSys == "WINDOWS"'},
        'no slot in the pool matches --requirements OpSys == "WINDOWS"',
    ),
}


def on_pool_impossible_requests(paths: dict) -> dict:
    import classad2
    import htcondor2

    import condormagic as cm
    from condormagic.display.cards import run_card, run_text
    from condormagic.display.monitor import Monitor

    out = {}
    for what, (options, _) in IMPOSSIBLE.items():
        # force: the same function and sources would attach to the first of these runs
        run = cm.submit(
            Deforestation, _sources(paths), name=what, tiles_per_job=3, backend="htcondor", force=True, **options
        )
        run.status()
        reasons = run.waiting_reasons()
        monitor = Monitor(run, autostart=False)
        out[what] = {
            "idle": run.status()["idle"],
            "reasons": sorted(set(reasons.values())),
            "job_reasons": sorted({j.reason for j in run.jobs(refresh=False)}),
            "text": run_text(run),
            "card": run_card(run),
            "monitor": monitor.table.value,
            "n_waiting": len(reasons),
        }
    # HTCondor's own words, for the record: after a negotiation cycle, "no match found" at most.
    schedd = htcondor2.Schedd()
    run = cm.run("cpus")
    ads = schedd.query(constraint=f"CondormagicRun == {classad2.quote(run.id)}", projection=["LastRejMatchReason"])
    out["htcondor_says"] = sorted({str(ad.get("LastRejMatchReason")) for ad in ads})
    # A request that fits waits for nothing but its turn: no reason.
    fits = cm.submit(
        Deforestation, _sources(paths), name="fits", mem="256MB", tiles_per_job=6, backend="htcondor", force=True
    )
    fits.status()
    out["fits"] = fits.waiting_reasons()
    fits.wait(timeout=60)
    # What the reason says to do: remove the jobs, retry them with a request that fits.
    run.remove()
    until(lambda: run.status()["removed"] == 2)
    out["retried"] = run.retry(cpus=2)
    run.status()
    out["after"] = run.waiting_reasons()
    out["status"] = run.wait(timeout=60).status()
    return out


def test_a_request_no_slot_can_match_says_why(htcondor_pool, pool_tmp, seed):
    pool = htcondor_pool
    out = pool.call(on_pool_impossible_requests, paths=seed["paths"], env=runs_env(pool_tmp))
    for what, (_, reason) in IMPOSSIBLE.items():
        seen = out[what]
        assert seen["idle"] == 2 and seen["n_waiting"] == 2, (what, seen)
        assert len(seen["reasons"]) == 1 and seen["reasons"][0].startswith(reason), (what, seen)
        # The same words in the job states, the status text and the monitor's job table.
        assert seen["job_reasons"] == seen["reasons"], (what, seen)
        assert f"2 jobs idle: {reason}" in seen["text"], seen["text"]
        assert _html_text(reason) in seen["monitor"], seen["monitor"]
        assert _html_text(f"2 jobs idle: {reason}") in seen["card"], seen["card"]
    assert set(out["htcondor_says"]) <= {"None", "no match found"}  # all HTCondor itself would say
    assert out["fits"] == {}
    assert out["retried"] == [0, 1] and out["after"] == {} and out["status"]["completed"] == 2, out

    # From a terminal: condormagic status says it too.
    done = pool.command([_cli(), "status", "memory"], env=runs_env(pool_tmp))
    assert done.returncode == 0, done.stderr
    assert f"schedd {pool.schedd_name}" in done.stdout
    assert "2 jobs idle: no slot in the pool has 8 GB of memory (the largest has 4 GB)" in done.stdout, done.stdout
    for what in IMPOSSIBLE:
        pool.command([_cli(), "rm", what], env=runs_env(pool_tmp))


def _html_text(text: str) -> str:
    from html import escape

    return escape(text)


def _cli() -> str:
    return os.path.join(os.path.dirname(sys.executable), "condormagic")


# -- no shared file system: --transfer, with sources over HTTP and local ------------------------
class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Files of one folder over HTTP with byte ranges (GDAL's /vsicurl/ reads parts of a GeoTIFF)."""

    def send_head(self):
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return None
        size = os.path.getsize(path)
        wanted = re.match(r"bytes=(\d*)-(\d*)$", self.headers.get("Range", ""))
        start, end = 0, size - 1
        if wanted and (wanted[1] or wanted[2]):
            if wanted[1]:
                start, end = int(wanted[1]), min(int(wanted[2] or end), end)
            else:
                start = max(0, size - int(wanted[2]))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Content-Type", "image/tiff")
        self.end_headers()
        source = open(path, "rb")
        source.seek(start)
        self.left = end - start + 1
        type(self).served.append((self.path, self.headers.get("Range")))
        return source

    def copyfile(self, source, outputfile):
        while self.left > 0:
            chunk = source.read(min(65536, self.left))
            if not chunk:
                break
            outputfile.write(chunk)
            self.left -= len(chunk)

    def log_message(self, format, *args):
        pass


@pytest.fixture
def http_folder(seed):
    """``http://127.0.0.1:PORT/`` serving the seed's folder, with byte ranges."""
    handler = type("Handler", (RangeHandler,), {"served": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(seed["folder"])))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.served
    server.shutdown()
    server.server_close()


def Where(img):
    """The seed's function, saying where it runs."""
    import os

    print("cwd", os.getcwd())
    return Deforestation(img)


def on_pool_transfer(paths: dict, url: str) -> dict:
    import condormagic as cm

    src = cm.sources(
        polygon=paths["polygon"], dem1=f"/vsicurl/{url}/dem1.tif", dem2=paths["dem2"], grid="dem2", tile=TILE
    )
    run = cm.submit(Where, src, cpus=1, mem="512MB", tiles_per_job=3, backend="htcondor", transfer=True)
    run.wait(timeout=120)
    moved = json.loads((run.path / "transfer" / "manifest.json").read_text())
    return {
        "status": run.status(),
        "output": run.output,
        "stdout": [run.logs(j)[0] for j in range(run.n_jobs)],
        "submit": (run.path / "submit.sub").read_text(),
        "sources": [s["path"] for s in moved["sources"]],
        "metrics": sorted(os.listdir(run.path / "metrics")),
        "run_dir": str(run.path),
    }


def test_transfer_runs_without_a_shared_file_system(htcondor_pool, pool_tmp, seed, http_folder):
    url, served = http_folder
    out = htcondor_pool.call(on_pool_transfer, paths=seed["paths"], url=url, env=runs_env(pool_tmp))
    assert out["status"]["completed"] == 2, out
    # The local sources travel by base name; the one over HTTP is read where it is.
    assert out["sources"] == ["polygon.tif", f"/vsicurl/{url}/dem1.tif", "dem2.tif"]
    submit = out["submit"]
    assert "should_transfer_files = YES" in submit and "transfer_output_remaps" in submit
    assert seed["paths"]["dem2"] in submit and "dem1.tif" not in submit.split("transfer_input_files")[1].split("\n")[0]
    # Each job ran in its own scratch directory of the execute node, not in the run directory...
    execute = str(htcondor_pool.local / "execute")
    for text in out["stdout"]:
        cwds = set(re.findall(r"cwd (\S+)", text))
        assert len(cwds) == 1 and next(iter(cwds)).startswith(execute), text
        assert not next(iter(cwds)).startswith(out["run_dir"])
    # ...read dem1 by HTTP ranges, and its tiles and metrics came back by transfer_output_remaps.
    assert any(path == "/dem1.tif" and rng for path, rng in served), served
    assert out["metrics"] == ["000000.json", "000001.json"]
    np.testing.assert_array_equal(mosaic(out["output"]), seed["expected"])


# -- --mem-retry: HTCondor's own retry with more memory -------------------------------------------
def Hungry(img):
    """The seed's function, holding 350 MB for a few seconds (the pool checks memory every second)."""
    import time

    ballast = np.ones(350 * 2**20, np.uint8)
    time.sleep(4)
    return Deforestation(img) * ballast[:1]


def on_pool_memory(paths: dict) -> dict:
    import htcondor2

    import condormagic as cm

    src = _sources(paths, tile=512)
    common = {"cpus": 1, "mem": "300MB", "backend": "htcondor", "check": False}
    retried = cm.submit(Hungry, src, name="retried", mem_retry="1GB", **common)
    held = cm.submit(Hungry, src, name="held", force=True, **common)  # not the same run as the first
    retried.wait(timeout=120)
    held.wait(timeout=60)
    memory = [
        int(e["ExecuteProps"]["Memory"])
        for e in htcondor2.JobEventLog(str(retried.path / "events.log")).events(0)
        if e.type == 1
    ]
    (job,) = retried.jobs()
    (stuck,) = held.jobs()
    held.remove()
    return {
        "status": retried.status(),
        "starts": job.starts,
        "memory": memory,
        "options": retried.options["mem_retry"],
        "output": retried.output,
        "held": [stuck.state, stuck.reason],
    }


def test_mem_retry_runs_a_job_again_with_more_memory(htcondor_pool, pool_tmp, seed):
    out = htcondor_pool.call(on_pool_memory, paths=seed["paths"], env=runs_env(pool_tmp))
    # Over 300 MB the pool stopped the job and ran it again with twice as much (in 128 MB steps).
    assert out["status"]["completed"] == 1 and out["starts"] == 2, out
    assert out["memory"][0] < 600 <= out["memory"][1] <= 1024, out
    assert out["options"] == {"max": 1024, "factor": 2.0}
    np.testing.assert_array_equal(mosaic(out["output"]), seed["expected"])
    # Without --mem-retry the same job is held, and says why.
    assert out["held"][0] == "held" and "memory usage exceeded request_memory" in out["held"][1], out


# -- what the schedd refuses ----------------------------------------------------------------------
def on_pool_refused(paths: dict) -> dict:
    import condormagic as cm

    try:
        cm.submit(
            Deforestation, _sources(paths), backend="htcondor", submit_commands=['+ProjectName="refused"'], mem="256MB"
        )
    except cm.CondorMagicError as exc:
        runs = os.environ["CONDORMAGIC_RUNS_DIR"]
        left = os.listdir(runs) if os.path.isdir(runs) else []
        return {"error": type(exc).__name__, "message": str(exc), "runs": left}
    return {"error": None}


def test_a_refused_submission_is_one_sentence_and_leaves_nothing(htcondor_pool, pool_tmp, seed):
    """The pool's SUBMIT_REQUIREMENT refuses a project: the schedd's own reason, in one sentence."""
    out = htcondor_pool.call(on_pool_refused, paths=seed["paths"], env=runs_env(pool_tmp))
    assert out["error"] == "SubmitRefused", out
    message = out["message"]
    assert message.startswith(f"The schedd {htcondor_pool.schedd_name} refused the submission: ")
    assert "project refused is closed; use another +ProjectName" in message and "\n" not in message
    assert out["runs"] == []


# -- pointing at a pool, and the CLI from processes that did not submit ---------------------------
def Sleepy(img):
    """The seed's function, slow while the flag file exists (so that jobs are queued to remove)."""
    import os
    import time

    while os.path.exists(FLAG) and time.time() < START + 60:
        time.sleep(0.2)
    return Deforestation(img)


START = 0.0


def on_pool_submit_elsewhere(paths: dict, flag: str, collector: str, schedd: str) -> dict:
    global FLAG, START
    import time

    import htcondor2

    import condormagic as cm

    FLAG, START = flag, time.time()
    open(flag, "w").close()
    cm.configure(pool=collector, schedd=schedd)
    src = _sources(paths)
    run = cm.submit(Sleepy, src, name="ELSEWHERE", mem="256MB", tiles_per_job=2, backend="htcondor", check=False)
    return {"options": run.options, "configured": htcondor2.param.get("COLLECTOR_HOST"), "jobs": run.n_jobs}


def test_the_cli_steers_a_pool_run_from_other_processes(htcondor_pool, pool_tmp, seed):
    """A process with no HTCondor configuration points at the pool (pool=, schedd=) and submits; other
    such processes list, show, remove and retry the run with the CLI, at the schedd it went to."""
    pool = htcondor_pool
    schedd = pool.schedd_name
    env = {**runs_env(pool_tmp), "CONDOR_CONFIG": None}
    flag = pool_tmp / "slow"
    out = pool.call(
        on_pool_submit_elsewhere,
        paths=seed["paths"],
        flag=str(flag),
        collector=pool.collector,
        schedd=schedd,
        env=env,
    )
    assert out["configured"] is None  # nothing but the settings said where the pool is
    assert (out["options"]["pool"], out["options"]["schedd"]) == (pool.collector, schedd)

    def cli(*args):
        done = pool.command([_cli(), *args], env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    listed = cli("runs")
    assert re.search(r"ELSEWHERE\s+\S+\s+htcondor\s+3 jobs", listed), listed
    shown = cli("status", "ELSEWHERE")
    assert f"on htcondor (schedd {schedd}, pool {pool.collector}) cluster " in shown, shown
    assert "idle" in shown or "running" in shown

    assert cli("rm", "ELSEWHERE").startswith("Removed 3 job(s) of ELSEWHERE")
    # The jobs leave the queue (a running one once it is stopped), and the run's log says so.
    until(lambda: not pool.tool("condor_q", "-constraint", 'JobBatchName == "ELSEWHERE"', "-af", "ProcId").stdout)
    until(lambda: "removed 3" in cli("status", "ELSEWHERE"))
    flag.unlink()
    assert cli("retry", "ELSEWHERE").startswith("Resubmitted 3 job(s) of ELSEWHERE: [0, 1, 2]")
    waited = pool.command(
        [sys.executable, "-c", "import condormagic as cm; r = cm.run('ELSEWHERE').wait(120); print(r.output)"],
        env=env,
    )
    assert waited.returncode == 0, waited.stderr
    shown = cli("status", "ELSEWHERE")
    assert "completed 3" in shown and "removed" not in shown.split("\n")[1], shown
    np.testing.assert_array_equal(mosaic(waited.stdout.strip()), seed["expected"])


def test_kernel_runs_as_the_pool_user_and_finds_the_schedd(htcondor_pool, pool_tmp):
    nb = htcondor_pool.execute_notebook(
        [
            "import getpass, os\n"
            "from condormagic.backends import resolve\n"
            "print(getpass.getuser(), os.getcwd(), resolve('auto')[0])"
        ],
        cwd=pool_tmp,
        timeout=60,
    )
    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs).split()
    assert printed == [htcondor_pool.login, str(pool_tmp), "htcondor"]
