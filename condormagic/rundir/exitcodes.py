"""What a job's exit code means: the worker exits with one of these, the state and the submit
description read them (a failure no retry can change is not retried)."""

from __future__ import annotations

EXIT_FUNCTION = 1  # the function raised: the same input fails again, so no retry helps
EXIT_OUTPUT = 2  # it returned something the contract refuses: no retry helps
EXIT_READ = 3  # a source could not be read here (a file system or network hiccup may pass)
EXIT_SETUP = 4  # the run directory or its function could not be used
EXIT_WRITE = 5  # a tile could not be written (disk full, quota): a retry elsewhere may work
EXIT_INTERRUPTED = 6  # the function raised KeyboardInterrupt
EXIT_SYSEXIT = 7  # the function called sys.exit()

MEANING = {
    EXIT_FUNCTION: "the function raised an exception",
    EXIT_OUTPUT: "the function returned what the contract does not allow",
    EXIT_READ: "a source could not be read",
    EXIT_SETUP: "the job could not start",
    EXIT_WRITE: "a tile could not be written",
    EXIT_INTERRUPTED: "the function raised KeyboardInterrupt",
    EXIT_SYSEXIT: "the function called sys.exit()",
}
# Exit codes that no retry changes: HTCondor's retry_until stops on them.
PERMANENT = (EXIT_FUNCTION, EXIT_OUTPUT, EXIT_INTERRUPTED, EXIT_SYSEXIT)


def meaning(code: int | None) -> str:
    """``exited with code 5 (a tile could not be written)``."""
    what = MEANING.get(code) if code is not None else None
    return f"exited with code {code}" + (f" ({what})" if what else "")
