"""The submit description condormagic writes, read back by the real ``htcondor2.Submit``.

The seed's example checked line by line; the transfer mode; the site's pass-throughs; and
user values (run names, paths) that try to change what the description means.
"""

from __future__ import annotations

import classad2
import htcondor2
import pytest

from condormagic.backends.description import build_description, site_options
from condormagic.backends.submitlang import split_arguments
from condormagic.errors import CondorMagicError
from condormagic.resources import parse_memory
from condormagic.rundir.clusters import itemdata, submit_file_text

RUN = "/home/user/condormagic-runs/4447948df06d2f7d"
NOTEBOOKS = "/home/user/notebooks"
SEED = {"cpus": 3, "mem": parse_memory("6GB"), "gpus": 0, "disk": None, "cwd": NOTEBOOKS}


def parsed(description: dict, jobs: list[int]) -> htcondor2.Submit:
    """``submit.sub`` as ``condor_submit`` would read it: the real parser."""
    return htcondor2.Submit(submit_file_text(description, jobs))


def expand(submit: htcondor2.Submit, command: str, job: str = "0", cluster: int = 42729, proc: int = 0) -> str:
    submit = htcondor2.Submit(dict(submit))
    submit["job"], submit["ClusterId"], submit["ProcId"] = job, str(cluster), str(proc)
    return submit.expand(command)


def test_seed_example_line_by_line():
    """``%%condor --cpus 3 --mem 6GB --name DEFORESTATION`` over three jobs."""
    description = build_description(RUN, "4447948df06d2f7d", "DEFORESTATION", SEED, executable_path="/usr/bin/python3")
    text = submit_file_text(description, [0, 1, 2])
    assert text.splitlines() == [
        "universe = vanilla",
        "executable = /usr/bin/python3",
        f'arguments = "-m condormagic.worker {RUN} $(job)"',
        "request_cpus = 3",
        "request_memory = 6144",
        f"log = {RUN}/events.log",
        f"initialdir = {NOTEBOOKS}",
        f"output = {RUN}/logs/$(ClusterId).$(ProcId).out",
        "should_transfer_files = NO",
        'environment = "OMP_NUM_THREADS=3 OPENBLAS_NUM_THREADS=3 MKL_NUM_THREADS=3 NUMEXPR_NUM_THREADS=3 '
        "GDAL_NUM_THREADS=3 GDAL_CACHEMAX=1536 PYTHONUNBUFFERED=1 GDAL_HTTP_CONNECTTIMEOUT=30 GDAL_HTTP_TIMEOUT=30 "
        'GDAL_HTTP_MAX_RETRY=0"',
        "max_retries = 3",
        "retry_until = ExitCode =?= 1 || ExitCode =?= 2 || ExitCode =?= 6 || ExitCode =?= 7",
        'My.JobBatchName = "DEFORESTATION"',
        'My.CondormagicRun = "4447948df06d2f7d"',
        f"error = {RUN}/logs/$(ClusterId).$(ProcId).err",
        "queue job from (",
        "0",
        "1",
        "2",
        ")",
    ]
    submit = parsed(description, [0, 1, 2])
    assert dict(submit) == description
    assert list(submit.itemdata()) == [{"job": "0"}, {"job": "1"}, {"job": "2"}] == itemdata([0, 1, 2])
    assert expand(submit, "request_memory") == "6144"  # "6GB" as HTCondor reads it: 6 x 1024 MB
    assert split_arguments(expand(submit, "arguments", job="2")) == ["-m", "condormagic.worker", RUN, "2"]
    assert expand(submit, "output", cluster=42729, proc=2) == f"{RUN}/logs/42729.2.out"
    assert classad2.ExprTree(submit["retry_until"]).eval(classad2.ClassAd({"ExitCode": 1})) is True
    assert classad2.ExprTree(submit["retry_until"]).eval(classad2.ClassAd({"ExitCode": 3})) is False


def test_retry_until_leaves_a_killed_job_to_max_retries():
    """A job killed by a signal has no ExitCode: retry_until is false, so max_retries retries it."""
    description = build_description(RUN, "id", "X", SEED)
    expr = classad2.ExprTree(description["retry_until"])
    assert expr.eval(classad2.ClassAd({"ExitBySignal": True})) is False


def test_gpus_disk_and_python_setting():
    options = dict(SEED, gpus=2, disk=20480)
    description = build_description(RUN, "id", "X", options, executable_path="/opt/eo/bin/python")
    assert description["request_gpus"] == "2"
    assert description["request_disk"] == "20480MB"
    assert description["executable"] == "/opt/eo/bin/python"


def test_transfer_mode():
    inputs = ["/data/eo/dem 2015.tif", "/data/eo/dem 2015.tif.aux.xml", "/data/eo/polygon.tif"]
    options = dict(SEED, **site_options(transfer=True))
    description = build_description(RUN, "id", "DEFORESTATION", options, "/usr/bin/python3", inputs=inputs)
    shared = build_description(RUN, "id", "DEFORESTATION", SEED, "/usr/bin/python3")
    changed = {k: v for k, v in description.items() if shared.get(k) != v}
    assert changed == {
        "arguments": '"-m condormagic.worker . $(job) ."',
        "initialdir": RUN,
        "should_transfer_files": "YES",
        "when_to_transfer_output": "ON_EXIT",
        "transfer_executable": "False",
        "transfer_input_files": "function.pkl, transfer/manifest.json, /data/eo/dem 2015.tif, "
        "/data/eo/dem 2015.tif.aux.xml, /data/eo/polygon.tif",
        "transfer_output_files": "tiles, metrics",
        "transfer_output_remaps": f'"tiles = {RUN}/tiles; metrics = {RUN}/metrics"',
    }
    submit = parsed(description, [0, 1, 2])
    assert dict(submit) == description
    assert split_arguments(expand(submit, "arguments", job="1")) == ["-m", "condormagic.worker", ".", "1", "."]
    # The log, stdout and stderr stay where the run directory is: the schedd writes them there.
    assert expand(submit, "log") == f"{RUN}/events.log"


def test_transfer_mode_refuses_what_it_cannot_send():
    options = dict(SEED, transfer=True)
    with pytest.raises(CondorMagicError, match="comma"):
        build_description(RUN, "id", "X", options, inputs=["/data/a,b.tif"])
    with pytest.raises(CondorMagicError, match="double quote"):
        build_description('/runs/a"b/id', "id", "X", options, inputs=[])


def test_site_pass_throughs():
    options = dict(
        SEED,
        **site_options(
            requirements='(OpSysAndVer == "AlmaLinux9") && (Memory >= 8000)',
            container="docker://ghcr.io/jeo/eo-python:2024",
            submit=["accounting_group=group_eo.jrc", '+ProjectName="BDAP"', "My.Site = $(ClusterId)"],
        ),
    )
    description = build_description(RUN, "id", "X", options)
    assert description["requirements"] == '(OpSysAndVer == "AlmaLinux9") && (Memory >= 8000)'
    assert description["universe"] == "container"
    assert description["container_image"] == "docker://ghcr.io/jeo/eo-python:2024"
    assert description["accounting_group"] == "group_eo.jrc"
    assert description["My.ProjectName"] == '"BDAP"'  # +ProjectName, as the bindings spell it
    submit = parsed(description, [0])
    assert dict(submit) == description
    assert expand(submit, "My.Site", cluster=42729) == "42729"  # the site's own macros stay macros


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"submit": ["queue=100"]}, "set by condormagic itself"),
        ({"submit": ["executable=/bin/sh"]}, "set by condormagic itself"),
        ({"submit": ["Arguments=-c evil"]}, "set by condormagic itself"),
        ({"submit": {"foo bar": "1"}}, "not a submit command name"),
        ({"submit": {"a=b": "1"}}, "not a submit command name"),
        ({"submit": {"accounting_group": "g\nqueue 100"}}, "line break"),
        ({"submit": ["no_equals_sign"]}, "KEY=VALUE"),
        ({"requirements": "Memory >"}, "not a ClassAd expression"),
        ({"requirements": "true\nqueue 100"}, "line break"),
        ({"container": "img\nexecutable = /bin/sh"}, "line break"),
        ({"container": " "}, "needs an image"),
    ],
)
def test_site_pass_throughs_refuse(kwargs, message):
    with pytest.raises(CondorMagicError, match=message):
        site_options(**kwargs)


HOSTILE = [
    'quote"d',
    "with spaces",
    "single'quote",
    "$(HOME)",
    "$ENV(PATH)",
    "$RANDOM_INTEGER(1,9)",
    "cost$",
    "semi;colon=equals",
    "#hash",
    "back\\slash",
    "tab\there",
    "a,b",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_name_and_path_cannot_change_the_description(hostile):
    run_dir = f"/tmp/{hostile} x/runs/{hostile}"
    options = dict(SEED, cwd=f"/home/{hostile}/notebooks")
    description = build_description(run_dir, f"id{hostile}", hostile, options, executable_path=f"/opt/{hostile}/python")
    submit = parsed(description, [0, 7])
    # The same commands, no more (no "queue", no new key), and item data still two jobs.
    assert dict(submit) == description
    assert list(submit.itemdata()) == [{"job": "0"}, {"job": "7"}]
    # Each value means the user's own text, macros and all left alone.
    assert expand(submit, "log") == f"{run_dir}/events.log"
    assert expand(submit, "initialdir") == f"/home/{hostile}/notebooks"
    assert expand(submit, "executable") == f"/opt/{hostile}/python"
    assert expand(submit, "output", proc=1) == f"{run_dir}/logs/42729.1.out"
    assert split_arguments(expand(submit, "arguments", job="7")) == ["-m", "condormagic.worker", run_dir, "7"]
    assert classad2.ExprTree(expand(submit, "My.JobBatchName")).eval() == hostile
    assert classad2.ExprTree(expand(submit, "My.CondormagicRun")).eval() == f"id{hostile}"


@pytest.mark.parametrize("hostile", ["with spaces", "$(HOME)", "semi;colon=equals", "a'b"])
def test_hostile_path_in_transfer_mode(hostile):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from schedd_standin import _remaps

    run_dir = f"/tmp/{hostile}/runs/x"
    options = dict(SEED, transfer=True)
    description = build_description(run_dir, "x", "X", options, inputs=[f"/data/{hostile}/dem.tif"])
    submit = parsed(description, [0])
    assert dict(submit) == description
    assert expand(submit, "initialdir") == run_dir
    assert [n.strip() for n in expand(submit, "transfer_input_files").split(",")] == [
        "function.pkl",
        "transfer/manifest.json",
        f"/data/{hostile}/dem.tif",
    ]
    assert _remaps(expand(submit, "transfer_output_remaps")) == {
        "tiles": f"{run_dir}/tiles",
        "metrics": f"{run_dir}/metrics",
    }


@pytest.mark.parametrize(
    "hostile, why",
    [
        ("line\nbreak", "line break"),
        ("x\nqueue 100", "line break"),
        ("carriage\rreturn", "line break"),
        ("\nexecutable = /bin/sh", "line break"),
        # No quoting keeps "$$" literal: $(DOLLAR)$(DOLLAR) expands to a match-time $$( macro.
        ("$$(Memory)", "match-time macro"),
        ("price$$", "match-time macro"),
    ],
)
def test_unquotable_values_are_refused(hostile, why):
    with pytest.raises(CondorMagicError, match=why):
        build_description(f"/tmp/{hostile}", "id", "X", SEED)
    with pytest.raises(CondorMagicError, match=why):
        build_description("/tmp/runs/x", "id", hostile, SEED)
    with pytest.raises(CondorMagicError, match=why):
        build_description("/tmp/runs/x", "id", "X", SEED, executable_path=hostile)
