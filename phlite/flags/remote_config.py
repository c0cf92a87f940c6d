"""Remote config: the project config posthog-js fetches (/array/<token>/config, config.js, and the
config part of /decide and /flags?config=true), and the payload of a remote-config flag.

Pure: plain values in and out (the FlagService gives it the flag rows).
"""

# The remote config answers "no" for every optional product phlite does not serve (replay on /s/,
# heatmaps, surveys, exception autocapture, ...): posthog-js then loads no extension script.
OPTIONAL_PRODUCTS_OFF = {
    "sessionRecording": False,
    "heatmaps": False,
    "surveys": False,
    "productTours": False,
    "conversations": False,
    "capturePerformance": False,
    "autocaptureExceptions": False,
    "captureDeadClicks": False,
    "logs": {"captureConsoleLogs": False},
    "errorTracking": {"autocaptureExceptions": False, "suppressionRules": []},
}


def project_config(token: str, has_flags: bool) -> dict:
    """The remote config of a project, as PostHog's RemoteConfig.build_config shapes it."""
    return {
        "token": token,
        "supportedCompression": ["gzip", "gzip-js"],
        "hasFeatureFlags": has_flags,
        "autocapture_opt_out": False,
        "analytics": {"endpoint": "/i/v0/e/"},
        "elementsChainAsString": True,
        "defaultIdentifiedOnly": True,
        "isAuthenticated": False,
        "toolbarParams": {},
        "config": {"enable_collect_everything": True},
        "siteApps": [],
        **OPTIONAL_PRODUCTS_OFF,
    }


def find_flag(by_key: dict, rows, flag: str) -> dict | None:
    """The remote-config flag that `flag` (a key, or an id in digits) names among non-deleted rows."""
    row = by_key.get(flag)
    if row is None and flag.isdigit():
        row = next((r for r in rows if r["id"] == int(flag)), None)
    return row if row is not None and row["is_remote_configuration"] else None


def payload(row: dict) -> str | None:
    """The stored JSON text a remote-config flag serves; None when it has none."""
    value = (row["filters"].get("payloads") or {}).get("true")
    return None if value is None or value == "" else value
