"""The person properties flags see on the server (docs/flags-protocol.md "Flags: property sources").

Stored properties, overlaid by the request's `person_properties`, plus `distinct_id` when the
person exists, and every missing `$initial_X` filled from `X`: a first-time visitor can already
match a flag on `$initial_referrer` before ingestion has written it.
"""

# Event properties ingestion copies to `$initial_*` (docs/protocol.md "Automatic person properties"), plus the ones only the
# flags service knows (user agent, screen and viewport sizes, further click ids).
INITIAL_SOURCES = (
    "$app_build", "$app_name", "$app_namespace", "$app_version", "$browser", "$browser_version",
    "$device_type", "$current_url", "$pathname", "$os", "$os_version", "$referring_domain",
    "$referrer", "$raw_user_agent", "$screen_height", "$screen_width", "$viewport_height",
    "$viewport_width", "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_name",
    "utm_term", "gclid", "gad_source", "gclsrc", "dclid", "gbraid", "wbraid", "fbclid", "msclkid",
    "twclid", "li_fat_id", "mc_cid", "igshid", "ttclid", "rdt_cid", "irclid", "_kx", "epik",
    "qclid", "sccid",
)  # fmt: skip
_INITIAL_NAMES = tuple((source, "$initial_" + source.lstrip("$")) for source in INITIAL_SOURCES)
_INITIAL_OF = dict(_INITIAL_NAMES)


def person_props_for_flags(stored: dict | None, overrides: dict | None, distinct_id: str) -> dict:
    """The properties to evaluate a person's flags against.

    :param stored: the person's stored properties, or None when no person exists for distinct_id.
    :param overrides: the request's `person_properties` (they win over stored values).
    """
    props = dict(stored) if stored else {}
    if stored is not None:
        props["distinct_id"] = distinct_id
    if overrides:
        props.update(overrides)
    if len(props) < len(_INITIAL_NAMES):
        # Usually fewer properties than sources: walk the properties (the result is the same dict).
        for source in [k for k in props if k in _INITIAL_OF]:
            initial = _INITIAL_OF[source]
            if initial not in props:
                props[initial] = props[source]
        return props
    for source, initial in _INITIAL_NAMES:
        if initial not in props and source in props:
            props[initial] = props[source]
    return props
