"""What a person sees: the one decision "kernel, Voilà or plain text", and the views it picks from.

Views read a run through its public API only (``run.jobs()``, ``run.status()``, ``run.output``...);
nothing here changes a run except the steering buttons a view offers, which call the run's own
methods.
"""

from __future__ import annotations


def mode() -> str:
    """``"voila"`` in a dashboard's kernel, ``"kernel"`` where widgets can show, else ``"text"``."""
    from ..voila import in_voila

    if in_voila():
        return "voila"
    try:
        from IPython import get_ipython
    except ImportError:
        return "text"
    shell = get_ipython()
    return "kernel" if shell is not None and getattr(shell, "kernel", None) is not None else "text"


def show(run) -> None:
    """Display a run as its context asks: a read-only view in a dashboard, the live monitor in a
    kernel (with the HTML card as what frontends without widgets keep), the card and text elsewhere."""
    from IPython.display import display

    where = mode()
    if where == "voila":
        from .readonly import dashboard_view

        display(dashboard_view(run, actions=run.dashboard_steering))
    elif where == "kernel":
        from .monitor import display_bundle

        display(display_bundle(run), raw=True)
    else:
        from .cards import run_card

        display({"text/html": run_card(run), "text/plain": repr(run)}, raw=True)
