"""Pure feature-flag evaluation: flag definitions and request data in, results out.

No I/O, no database, no HTTP, no clock (`now` is passed in); imports nothing from phlite but
errors and the pure walker phlite.flags.filters. Compile a project's definitions once (`compile_flags`), then `evaluate` per request.
"""

from .compile import CompiledFlags, compile_flags
from .evaluate import Context, FlagResult, errors_while_computing, evaluate
from .hashing import hash_value, holdout_hash
from .properties import person_props_for_flags
from .validate import validate_flag

__all__ = [
    "CompiledFlags",
    "Context",
    "FlagResult",
    "compile_flags",
    "errors_while_computing",
    "evaluate",
    "hash_value",
    "holdout_hash",
    "person_props_for_flags",
    "validate_flag",
]
