"""The HTCondor backend end to end, with a stand-in schedd (``schedd_standin.py``) and nothing else fake.

Every run goes through ``cm.submit`` with ``backend="htcondor"``: the real run directory,
the real ``htcondor2.Submit`` handed to the schedd, the real worker run for each item of the
item data (as an execute node would run it), the event log read by the real
``htcondor2.JobEventLog``, the status, and the mosaic compared with the whole-array result.
"""

from __future__ import annotations

import json
import os
import sys

import classad2
import cloudpickle
import htcondor2
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from schedd_standin import ScheddStandIn

import condormagic as cm
from condormagic import config
from condormagic.backends import describe_default, get_backend, resolve
from condormagic.backends import htcondor as htc
from condormagic.cli import main as cli
from condormagic.errors import AuthenticationError, NoScheddError, SubmitRefused
from condormagic.rundir.clusters import submit_file_text

pytestmark = pytest.mark.usefixtures("runs_dir")
cloudpickle.register_pickle_by_value(sys.modules[__name__])

HEIGHT, WIDTH, TILE = 200, 300, 128  # 3 x 2 tiles, the right and bottom ones smaller
SCHEDD = "schedd.standin@vm"


@pytest.fixture
def schedd(tmp_path, monkeypatch):
    """The stand-in, found wherever the backend looks for a schedd."""
    standin = ScheddStandIn(tmp_path / "pool")
    monkeypatch.setattr(htc, "locate_schedd", lambda name=None, pool=None, timeout=None: (standin, SCHEDD))
    htc._probe_cache.clear()
    yield standin
    standin.close()
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


def test_submit_status_hold_release_evict_complete(schedd, deforestation):
    src, expected = deforestation
    run = cm.submit(Deforestation, src, cpus=3, mem="6GB", name="DEFORESTATION", tiles_per_job=2, backend="htcondor")

    # One cluster, its id on the run, recorded as the local backend records its clusters.
    assert run.backend == "htcondor" and run.n_jobs == 3
    assert run.cluster_id == 42729 and run.clusters == [42729]
    assert schedd.calls == [("submit", 42729, 3)]
    record = json.loads((run.path / "clusters" / "42729.json").read_text())
    assert set(record) == {"cluster", "backend", "description", "itemdata", "jobs", "submitted"}
    assert record["jobs"] == [0, 1, 2] and record["itemdata"] == [{"job": "0"}, {"job": "1"}, {"job": "2"}]

    # What the schedd got: the real Submit, three items, 6GB as 6144 MB; submit.sub is the same thing.
    received = schedd.submissions[0]
    assert received.items == [{"job": "0"}, {"job": "1"}, {"job": "2"}]
    assert htcondor2.Submit(received.commands).expand("request_memory") == "6144"
    assert received.commands["request_cpus"] == "3"
    assert received.commands["My.JobBatchName"] == '"DEFORESTATION"'
    submit_sub = (run.path / "submit.sub").read_text()
    assert submit_sub == submit_file_text(received.commands, [0, 1, 2])
    assert dict(htcondor2.Submit(submit_sub)) == received.commands
    assert run.status() == {"idle": 3, "running": 0, "completed": 0, "failed": 0, "held": 0, "removed": 0}

    # Job 0 starts; the pool takes its slot away; it is idle again, to restart later.
    schedd.start(42729, 0)
    assert run.status()["running"] == 1
    asked = run.query()
    assert asked[0]["state"] == "running" and asked[0]["RemoteHost"].startswith("slot1_1@")
    assert isinstance(asked[0]["MemoryUsage"], int)  # evaluated from ResidentSetSize, as in a real job ad
    assert [c[0] for c in schedd.calls].count("query") == 1  # one query for the whole run
    schedd.evict(42729, 0)
    assert run.status()["idle"] == 3

    # The pool holds job 1 (over its memory); the status shows why.
    reason = (
        "Error from slot1_2@vm: Job has gone over memory limit of 6144 megabytes. Peak usage: 7012 megabytes. "
        "Consider resubmitting with a higher request_memory."
    )
    schedd.hold(42729, 1, reason, 34)
    # The user holds job 2 through the run: Schedd.act on 42729.2.
    assert run.hold([2]) == 1
    assert schedd.calls[-1] == ("act", "Hold", [(42729, 2)], "Held by the user with condormagic")
    jobs = run.jobs()
    assert [j.state for j in jobs] == ["idle", "held", "held"]
    assert jobs[1].reason == reason and jobs[2].reason == "held by a user"
    shown = CliRunner().invoke(cli, ["status", run.id])
    assert shown.exit_code == 0, shown.output
    assert (
        "cluster 42729" in shown.output
        and "Job#1 held: Error from slot1_2@vm: Job has gone over memory" in shown.output
    )
    held = run.query()
    assert held[1]["HoldReasonCode"] == 34 and held[2]["HoldReason"] == "Held by the user with condormagic"
    assert set(held) == {0, 1, 2}

    # Release both; the pool runs everything, job 0 for the second time.
    assert run.release() == 2
    assert schedd.calls[-1][:3] == ("act", "Release", [(42729, 1), (42729, 2)])
    assert run.status()["idle"] == 3
    assert schedd.negotiate() == [(42729, 0), (42729, 1), (42729, 2)]
    assert run.status()["completed"] == 3 and run.query() == {}
    job0 = run.state.reader.proc((42729, 0))
    assert job0.starts == 2 and job0.history.count("running") >= 2
    assert "Percentage deforestation" in run.logs(0)[0]
    np.testing.assert_array_equal(mosaic(run), expected)


def test_retry_submits_only_failed_jobs_as_a_new_cluster(schedd, deforestation, tmp_path):
    src, expected = deforestation
    flag = str(tmp_path / "refuse-edges")
    open(flag, "w").close()

    def Edges(img):
        if img["dem2"].shape[1] < TILE and os.path.exists(flag):
            raise ValueError("edge tile refused on purpose")
        return Deforestation(img)

    run = cm.submit(Edges, src, cpus=1, mem="1GB", tiles_per_job=1, backend="htcondor", check=False)
    assert run.n_jobs == 6
    schedd.negotiate()
    status = run.status()
    assert status["completed"] == 4 and status["failed"] == 2
    failed = [j for j in run.jobs() if j.state == "failed"]
    assert [j.job for j in failed] == [2, 5]  # the right-hand column of tiles
    assert all("the function raised ValueError: edge tile refused on purpose" in j.reason for j in failed)
    # retry_until: a function that raises is not run again by max_retries (exit 1 is final).
    assert all(schedd.jobs[(42729, j.job)].starts == 1 for j in failed)

    os.unlink(flag)
    assert run.retry() == [2, 5]
    assert run.clusters == [42729, 42730] and run.cluster_id == 42729
    assert schedd.submissions[1].items == [{"job": "2"}, {"job": "5"}]
    assert (run.path / "submit.42730.sub").exists()
    combined = {j.job: (j.state, j.cluster, j.proc, j.attempts) for j in run.jobs()}
    assert combined[2] == ("idle", 42730, 0, 2) and combined[5] == ("idle", 42730, 1, 2)
    assert combined[0] == ("completed", 42729, 0, 1)
    schedd.negotiate()
    assert run.status()["completed"] == 6
    np.testing.assert_array_equal(mosaic(run), expected)


def test_transfer_mode_runs_in_scratch_and_brings_tiles_back(schedd, deforestation):
    src, expected = deforestation
    aux = str(src["dem1"].path) + ".aux.xml"
    with open(aux, "w") as fh:  # a sidecar GDAL reads with the raster: it must travel too
        fh.write('<PAMDataset><Metadata><MDI key="ORIGIN">test</MDI></Metadata></PAMDataset>\n')
    run = cm.submit(Deforestation, src, cpus=1, mem="2GB", tiles_per_job=3, backend="htcondor", transfer=True)
    received = schedd.submissions[0].commands
    assert received["should_transfer_files"] == "YES"
    inputs = [n.strip() for n in received["transfer_input_files"].split(",")]
    assert inputs[:2] == ["function.pkl", "transfer/manifest.json"] and aux in inputs
    moved = json.loads((run.path / "transfer" / "manifest.json").read_text())
    assert [s["path"] for s in moved["sources"]] == ["p.tif", "d1.tif", "d2.tif"]

    ran = schedd.negotiate()
    assert len(ran) == run.n_jobs == 2
    for key in ran:
        scratch = schedd.jobs[key].scratch
        assert (scratch / "d1.tif.aux.xml").exists() and (scratch / "function.pkl").exists()
        assert any((scratch / "tiles").iterdir())  # the worker wrote in its scratch directory...
    assert run.status()["completed"] == 2  # ...and the tiles and metrics came back by transfer_output_remaps
    assert sorted(p.name for p in (run.path / "metrics").iterdir()) == ["000000.json", "000001.json"]
    assert "tiles in" in run.logs(1)[1]  # stderr came back too
    np.testing.assert_array_equal(mosaic(run), expected)


def test_idle_job_query_says_why(tmp_path, monkeypatch, deforestation):
    """The seed's --cpus 3 on a pool of 2-CPU slots: idle forever, and only a query says why."""
    standin = ScheddStandIn(tmp_path / "pool", slot_cpus=2)
    monkeypatch.setattr(htc, "locate_schedd", lambda name=None, pool=None, timeout=None: (standin, SCHEDD))
    src, _ = deforestation
    run = cm.submit(Deforestation, src, cpus=3, mem="6GB", tiles_per_job=6, backend="htcondor")
    assert standin.negotiate() == []
    assert run.status()["idle"] == 1
    assert run.query() == {
        0: {"JobStatus": 1, "LastRejMatchReason": "no match found", "NumJobStarts": 0, "state": "idle"}
    }
    assert run.remove() == 1
    assert standin.calls[-1][:3] == ("act", "Remove", [(42729, 0)])
    assert run.status()["removed"] == 1
    gone = standin.history(f"CondormagicRun == {classad2.quote(run.id)}", ["ProcId", "JobStatus"])
    assert [(ad["ProcId"], ad["JobStatus"]) for ad in gone] == [(0, 3)]


def test_pool_and_schedd_settings_reach_the_collector(monkeypatch, deforestation, tmp_path):
    asked = []
    standin = ScheddStandIn(tmp_path / "pool")

    def locate(name=None, pool=None, timeout=None):
        asked.append((name, pool))
        return standin, name

    monkeypatch.setattr(htc, "locate_schedd", locate)
    monkeypatch.setitem(config._overrides, "schedd", "submit-eo.example.org")
    monkeypatch.setitem(config._overrides, "pool", "cm.example.org:9618")
    src, _ = deforestation
    run = cm.submit(Deforestation, src, tiles_per_job=6, backend="htcondor")
    assert (run.options["schedd"], run.options["pool"]) == ("submit-eo.example.org", "cm.example.org:9618")
    # A later change of settings does not move the run: it is steered where it was submitted.
    monkeypatch.setitem(config._overrides, "schedd", "another")
    run.remove()
    assert asked == [("submit-eo.example.org", "cm.example.org:9618")] * 2
    assert get_backend("htcondor").describe() == "htcondor (schedd another)"


def test_auto_picks_htcondor_when_a_schedd_is_found(schedd, monkeypatch, deforestation):
    monkeypatch.setattr(htc, "has_configuration", lambda: True)
    monkeypatch.setitem(config._overrides, "backend", "auto")
    src, _ = deforestation
    run = cm.submit(Deforestation, src, tiles_per_job=6)
    assert run.backend == "htcondor" and run.options["backend_reason"] == f"backend=auto: schedd {SCHEDD}"
    assert schedd.calls == [("submit", 42729, 1)]
    assert describe_default() == f"htcondor (schedd {SCHEDD}), as backend=auto: schedd {SCHEDD}"


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


def test_refused_submission_carries_the_schedd_message(schedd, runs_dir, deforestation):
    schedd.refuse = 'Submit:1: Found illegal unescaped double-quote: "-m x"y"'
    src, _ = deforestation
    with pytest.raises(SubmitRefused) as caught:
        cm.submit(Deforestation, src, backend="htcondor")
    message = str(caught.value)
    assert message.startswith(f"The schedd {SCHEDD} refused the submission: Submit:1: Found illegal unescaped")
    assert "submit again" in message
    assert not any(runs_dir.iterdir())  # the run directory went with the refusal


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


def test_site_options_reach_the_schedd(schedd, deforestation):
    src, _ = deforestation
    cm.submit(
        Deforestation,
        src,
        tiles_per_job=6,
        backend="htcondor",
        requirements="(Memory >= 4000)",
        submit_commands=["accounting_group=group_eo", '+ProjectName="BDAP"'],
    )
    received = schedd.submissions[0].commands
    assert received["requirements"] == "(Memory >= 4000)"
    assert received["accounting_group"] == "group_eo" and received["My.ProjectName"] == '"BDAP"'


def test_transfer_refuses_two_sources_of_one_name(schedd, runs_dir, tmp_path, write_raster):
    a, b = tmp_path / "2000", tmp_path / "2015"
    a.mkdir(), b.mkdir()
    data = np.ones((64, 64), np.float32)
    src = cm.sources(dem1=write_raster(a / "dem.tif", data), dem2=write_raster(b / "dem.tif", data), tile=64)
    with pytest.raises(cm.CondorMagicError, match=r"--transfer would put .* \(both are named dem\.tif\)"):
        cm.submit(Deforestation, src, backend="htcondor", transfer=True, check=False)
    assert schedd.calls == [] and not any(runs_dir.iterdir())
