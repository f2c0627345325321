"""The embedded backend: real in-process implementations of the etcd and NATS semantics the runtime uses."""

from .bus import EmbeddedMessaging, EmbeddedNats, subject_matches
from .clock import LoopClock, ManualClock
from .kv import EmbeddedDiscovery, EmbeddedEtcd
from .streams import EmbeddedResponsePlane
from .world import EmbeddedWorld, default_world

__all__ = [
    "EmbeddedWorld", "default_world", "EmbeddedEtcd", "EmbeddedDiscovery", "EmbeddedNats", "EmbeddedMessaging",
    "EmbeddedResponsePlane", "LoopClock", "ManualClock", "subject_matches",
]
