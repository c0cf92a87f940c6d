"""Feature flags: definitions -> compile -> evaluate. The pure evaluator is phlite.flags.eval."""

from .eval import *  # noqa: F401,F403
from .eval import __all__  # noqa: F401
