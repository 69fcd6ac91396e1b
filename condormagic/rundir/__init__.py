"""The run directory: its files and their names, the manifest, the event log, job state, results.

A run is a directory, self-describing and readable without the kernel that made it; its state
is derived from ``events.log`` plus the files present. Everything here reads or writes such a
directory and nothing else: no scheduler, no display.

Modules: :mod:`.layout` (file names, ownership check, locks, atomic writes), :mod:`.manifest`,
:mod:`.function` (function.pkl), :mod:`.clusters`, :mod:`.eventlog`, :mod:`.exitcodes`,
:mod:`.state`, :mod:`.results`, :mod:`.index` (the runs directory). Nothing is imported here, so
that the local runner, which needs only the event log, starts without numpy or rasterio.
"""
