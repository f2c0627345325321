"""How objects draw themselves in Jupyter: diagrams (pure text builders), display hooks, live views.

The entry points are ``dynamo_nb.diagram(obj, kind)`` (a :class:`Diagram`: Mermaid, DOT, SVG, text) and
``dynamo_nb.live(obj, kind)`` (a :class:`LiveView` that redraws as the system changes). Objects call
``display.hooks.mimebundle`` from their ``_repr_mimebundle_``. Layers, each importing only those below it:
``snapshot`` (plain data from live objects) → ``kinds`` (snapshot → model) → ``mermaid`` / ``dot`` / ``text``
(model → text) → ``diagram`` → ``hooks`` → ``live``; ``svg`` runs graphviz and knows none of them.
"""

from .diagram import Diagram
from .kinds import DEFAULT_KIND, KINDS, Limits
from .live import LiveView, live_views, stop_all
from .snapshot import Snapshot, snapshot
from .svg import DotFailedError, DotNotFoundError

__all__ = [
    "Diagram",
    "LiveView",
    "live_views",
    "stop_all",
    "snapshot",
    "Snapshot",
    "Limits",
    "KINDS",
    "DEFAULT_KIND",
    "DotNotFoundError",
    "DotFailedError",
]
