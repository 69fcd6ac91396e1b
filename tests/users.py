"""A second Unix user for the tests of what another user of a shared machine can and cannot do.

Created (once, with ``useradd``) when the tests run as root, as they do in CI; elsewhere the tests
that need it are skipped with that reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from htcondor_pool import ensure_user

OTHER_USER = "condormagic-other"


class OtherUser:
    """Runs Python as the second user, in folders it owns."""

    def __init__(self, name: str = OTHER_USER):
        pw = ensure_user(name)
        self.name, self.uid, self.gid, self.home = name, pw.pw_uid, pw.pw_gid, pw.pw_dir

    def make_dir(self, path: str | os.PathLike | None = None, mode: int = 0o755) -> Path:
        """A folder owned by this user (a new private one in /tmp by default)."""
        path = Path(path) if path is not None else Path(tempfile.mkdtemp(prefix="condormagic-other-"))
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self.uid, self.gid)
        os.chmod(path, mode)
        return path

    def run_python(self, code: str, cwd: str | os.PathLike, env: dict | None = None, timeout: float = 120):
        """Run ``code`` with the test interpreter as this user; return the finished process."""
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TZ")}
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=cwd,
            env={**base, "HOME": self.home, "USER": self.name, **(env or {})},
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
