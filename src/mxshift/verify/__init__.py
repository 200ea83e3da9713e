"""Verification (issue 4): compare (pure), collect (servers), run (store), gate (accept,
complete). Importing this package registers the verification tables on the model Base."""

from mxshift.state import verify_models  # noqa: F401  (tables on Base.metadata)
