"""Why an idle HTCondor job cannot start, in words a user acts on, from the pool's machine ads.

HTCondor itself says only ``no match found``. Here a job's request (``RequestCpus``,
``RequestMemory``, ``RequestDisk``, ``RequestGPUs``) is set against every slot of the pool as
if it were empty (a partitionable slot offers all it has: ``TotalSlotCpus``, ...), and the
job's ``Requirements`` are evaluated against each. When no slot could ever run the job, the
reason names what is missing: ``no slot in the pool has 3 CPUs (the largest has 2)``. A job
that some slot could run is only waiting for it, and gets no reason.
"""

from __future__ import annotations

import math

# A slot's resources when it is empty: what a partitionable slot can cut into dynamic slots,
# or a static slot's own. (attribute of the job's request, slot attribute, its total, unit)
RESOURCES = (
    ("RequestCpus", "Cpus", "TotalSlotCpus"),
    ("RequestMemory", "Memory", "TotalSlotMemory"),
    ("RequestDisk", "Disk", "TotalSlotDisk"),
    ("RequestGPUs", "GPUs", "TotalSlotGPUs"),
)
# What a query of the pool's slots asks for, besides what the job's requirements name.
MACHINE_ATTRIBUTES = ["Name", "Machine", "SlotType", "PartitionableSlot"] + [
    attr for _, *attrs in RESOURCES for attr in attrs
]
# Dynamic slots are pieces of a partitionable slot, whose ad says what it has in all.
SLOT_CONSTRAINT = 'SlotType =!= "Dynamic"'


def job_request(job) -> dict[str, float]:
    """What a job ad asks for: CPUs, memory (MB), disk (KB) and GPUs, evaluated (0 when unset)."""
    out = {}
    for attr, _, _ in RESOURCES:
        value = _number(job.eval(attr)) if attr in job else None
        out[attr] = value or 0
    return out


def empty_slot(machine):
    """A copy of a slot's ad as if nothing ran on it: a partitionable slot offers its totals."""
    import classad2

    slot = classad2.ClassAd(str(machine))
    for _, attr, total in RESOURCES:
        if total in machine and _number(machine.eval(total)) is not None:
            slot[attr] = machine.eval(total)
    return slot


def referenced(job, expressions) -> list[str]:
    """The slot attributes that the job's requirements (and other ``expressions``) name."""
    import classad2

    names = set()
    exprs = [job.lookup("Requirements")] if "Requirements" in job else []
    exprs += [classad2.ExprTree(e) for e in expressions if e]
    for expr in exprs:
        for ref in job.externalRefs(expr):
            scope, _, name = ref.rpartition(".")
            if scope.upper() in ("", "TARGET"):
                names.add(name)
    return sorted(names)


def explain(job, machines, requirements: str | None = None) -> str | None:
    """Why no slot of the pool can ever run ``job``; ``None`` when some slot can (it only waits).

    Parameters
    ----------
    job : classad2.ClassAd
        The job's ad, as the schedd has it (its ``Requirements`` as condor_submit made them).
    machines : list of classad2.ClassAd
        The pool's slot ads (partitionable and static; dynamic slots are ignored).
    requirements : str, optional
        The user's own ``--requirements``, named in the reason when they are what no slot meets.
    """
    slots = [empty_slot(m) for m in machines if str(m.get("SlotType", "")) != "Dynamic"]
    if not slots:
        return "the pool has no execute slots (condor_status lists none)"
    want = job_request(job)
    fits = [_fits(want, slot) for slot in slots]
    accepts = [_true(job.lookup("Requirements").eval(job, slot)) if "Requirements" in job else True for slot in slots]
    if any(f and a for f, a in zip(fits, accepts, strict=True)):
        return None
    reasons = []
    for attr, slot_attr, _ in RESOURCES:
        largest = max((_number(s.eval(slot_attr)) or 0 for s in slots), default=0)
        if want[attr] > largest:
            reasons.append(_too_big(attr, want[attr], largest))
    if reasons:
        return "; ".join(reasons)
    if requirements and not any(_true(_expr(requirements).eval(job, slot)) for slot in slots):
        return f"no slot in the pool matches --requirements {requirements}"
    if not any(accepts):
        return "no slot in the pool matches these jobs' requirements (condor_q -better-analyze says which part)"
    asked = ", ".join(_amount(attr, want[attr]) for attr, _, _ in RESOURCES if want[attr])
    return f"no slot in the pool has all of {asked} and matches these jobs' requirements"


def _fits(want: dict, slot) -> bool:
    return all(want[attr] <= (_number(slot.eval(slot_attr)) or 0) for attr, slot_attr, _ in RESOURCES if want[attr])


def _too_big(attr: str, want: float, largest: float) -> str:
    if attr == "RequestGPUs" and not largest:
        return f"no slot in the pool has {'a GPU' if want == 1 else f'{_count(want)} GPUs'} (the pool has none)"
    return f"no slot in the pool has {_amount(attr, want)} (the largest has {_amount(attr, largest, bare=True)})"


def _amount(attr: str, value: float, bare: bool = False) -> str:
    """A request in words: ``3 CPUs``, ``6 GB of memory``, ``100 GB of disk``, ``2 GPUs``."""
    if attr == "RequestCpus":
        return _count(value) if bare else f"{_count(value)} CPU{'s' if value != 1 else ''}"
    if attr == "RequestGPUs":
        return _count(value) if bare else f"{_count(value)} GPU{'s' if value != 1 else ''}"
    megabytes = value if attr == "RequestMemory" else value / 1024  # RequestDisk is in KB
    size = _size(megabytes)
    if bare:
        return size
    return f"{size} of {'memory' if attr == 'RequestMemory' else 'disk'}"


def _size(megabytes: float) -> str:
    for unit, scale in (("TB", 1024**2), ("GB", 1024)):
        if megabytes >= scale:
            value = megabytes / scale
            return f"{value:.0f} {unit}" if math.isclose(value, round(value), abs_tol=0.05) else f"{value:.1f} {unit}"
    return f"{megabytes:.0f} MB"


def _count(value: float) -> str:
    return f"{value:g}"


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _true(value) -> bool:
    return value is True or (isinstance(value, (int, float)) and not isinstance(value, bool) and value != 0)


def _expr(text: str):
    import classad2

    return classad2.ExprTree(text)
