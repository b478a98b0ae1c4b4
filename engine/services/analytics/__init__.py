"""Campaign analytics: the module becomes a package; the next commit splits it."""

from engine.services.analytics.rollups import *  # noqa: F403
