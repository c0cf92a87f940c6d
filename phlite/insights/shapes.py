"""Saved insights and dashboards as PostHog's REST API shows and takes them (pure): checking bodies,
shaping answers, and the query an insight runs (docs/insights.md "Saved insights and dashboards").

As with PostHog's serializers, fields a body may not set (id, short_id, result, ...) and unknown ones are
ignored; a field of the wrong type is a 400 naming it.
"""

import hashlib
from datetime import datetime, timedelta, timezone

import orjson

from phlite import errors
from phlite.query import clean_filters

# Nodes that wrap a query kind (`source`), as PostHog's insight `query` holds them.
WRAPPERS = {"InsightVizNode", "DataTableNode", "DataVisualizationNode"}
MAX_TEXT = 400  # PostHog's name / description length
MAX_TAGS = 100
MAX_LIST = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso(ms):
    if ms is None:
        return None
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bad(detail, attr):
    return errors.BadRequest(detail, attr=attr)


def _text(body, name, allow_none=True):
    v = body[name]
    if v is None and allow_none:
        return None
    if not isinstance(v, str):
        raise _bad(f"'{name}' must be a string.", name)
    if len(v) > MAX_TEXT:
        raise _bad(f"'{name}' is longer than {MAX_TEXT} characters.", name)
    return v


def _bool(body, name):
    v = body[name]
    if not isinstance(v, bool):
        raise _bad(f"'{name}' must be true or false.", name)
    return v


def _tags(body):
    v = body["tags"]
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(t, str) and 0 < len(t) <= 255 for t in v):
        raise _bad("'tags' must be a list of non-empty strings.", "tags")
    if len(v) > MAX_TAGS:
        raise _bad(f"'tags' holds at most {MAX_TAGS} tags.", "tags")
    return list(dict.fromkeys(v))


def _id(v):
    # An id SQLite can hold: a bigger number would fail when bound, not just find nothing.
    return isinstance(v, int) and not isinstance(v, bool) and -(1 << 63) <= v < (1 << 63)


def _ids(body, name):
    v = body[name]
    if v is None:
        return []
    if not isinstance(v, list) or not all(_id(i) for i in v):
        raise _bad(f"'{name}' must be a list of ids.", name)
    if len(v) > MAX_LIST:
        raise _bad(f"'{name}' holds at most {MAX_LIST} ids.", name)
    return list(dict.fromkeys(v))


def query_source(node, runnable):
    """The query kind node an insight `query` runs: the node itself, or the `source` of a wrapper.
    400 (attr "query") if it is no node phlite can run; `runnable` is the set of kinds the query API runs."""
    if not isinstance(node, dict):
        raise _bad("'query' must be a query node object.", "query")
    kind = node.get("kind")
    source = node
    if kind in WRAPPERS:
        source = node.get("source")
        if not isinstance(source, dict):
            raise _bad(f"A {kind} needs a 'source' query node.", "query")
    if source.get("kind") not in runnable:
        raise _bad(f"Unsupported query kind {source.get('kind')!r}: an insight runs one of "
                   f"{', '.join(sorted(runnable))}, alone or inside {', '.join(sorted(WRAPPERS))}.", "query")
    return source


def clean_insight(body, runnable):
    """({INSIGHT_EDITABLE column: value}, dashboard ids or None) from a create or PATCH body."""
    fields = {}
    for name in ("name", "description"):
        if name in body:
            fields[name] = _text(body, name)
    if fields.get("description", "") is None:
        fields["description"] = ""
    if "query" in body:
        if body["query"] is not None:
            query_source(body["query"], runnable)
        fields["query"] = body["query"]
    if body.get("filters"):
        raise _bad("phlite runs insights from their 'query'; legacy 'filters' are not supported.", "filters")
    if "tags" in body:
        fields["tags"] = _tags(body)
    for name in ("saved", "favorited", "deleted"):
        if name in body:
            fields[name] = _bool(body, name)
    dashboards = _ids(body, "dashboards") if "dashboards" in body else None
    return fields, dashboards


def _layouts(tile):
    v = tile.get("layouts")
    if v is None:
        return {}
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, dict) for k, x in v.items()):
        raise _bad("A tile's 'layouts' must map sizes to {x, y, w, h} objects.", "tiles")
    if len(orjson.dumps(v)) > 10_000:
        raise _bad("A tile's 'layouts' is too large.", "tiles")
    return v


def _tile_text(tile):
    text = tile.get("text")
    if text is None:
        return None
    body = text.get("body") if isinstance(text, dict) else text
    if not isinstance(body, str) or len(body) > 4000:
        raise _bad("A text tile needs a 'text' {\"body\": string} of at most 4000 characters.", "tiles")
    return body


def clean_tiles(value):
    """Tile edits for the store's update_dashboard, from a dashboard PATCH's `tiles`."""
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise _bad(f"'tiles' must be a list of at most {MAX_LIST} tiles.", "tiles")
    out = []
    for tile in value:
        if not isinstance(tile, dict):
            raise _bad("Each tile must be an object.", "tiles")
        edit = {}
        if "layouts" in tile:
            edit["layouts"] = _layouts(tile)
        if "color" in tile:
            if tile["color"] is not None and not (isinstance(tile["color"], str) and len(tile["color"]) <= 400):
                raise _bad("A tile's 'color' must be a string or null.", "tiles")
            edit["color"] = tile["color"]
        if "deleted" in tile:
            if not isinstance(tile["deleted"], bool):
                raise _bad("A tile's 'deleted' must be true or false.", "tiles")
            edit["deleted"] = tile["deleted"]
        if tile.get("text") is not None:
            edit["text"] = _tile_text(tile)
        if tile.get("id") is not None:
            if not _id(tile["id"]):
                raise _bad("A tile's 'id' must be an integer.", "tiles")
            edit["id"] = tile["id"]
        else:
            insight = tile.get("insight")
            insight_id = insight.get("id") if isinstance(insight, dict) else insight
            if insight_id is not None and not _id(insight_id):
                raise _bad("A new tile's 'insight' must be an insight id.", "tiles")
            if (insight_id is None) == ("text" not in edit):
                raise _bad("A new tile needs either an 'insight' or a 'text'.", "tiles")
            edit["insight_id"] = insight_id
        out.append(edit)
    return out


def clean_dashboard(body, creating=False):
    """({DASHBOARD_EDITABLE column: value}, tile edits or None) from a create or PATCH body."""
    fields = {}
    if "name" in body:
        fields["name"] = _text(body, "name")
    if "description" in body:
        fields["description"] = _text(body, "description") or ""
    for name in ("pinned", "deleted"):
        if name in body:
            fields[name] = _bool(body, name)
    if "tags" in body:
        fields["tags"] = _tags(body)
    if "filters" in body:
        fields["filters"] = clean_filters(body["filters"])
    if creating and body.get("use_template"):
        raise _bad("Dashboard templates are not supported.", "use_template")
    tiles = None
    if not creating and body.get("tiles") is not None:
        tiles = clean_tiles(body["tiles"])
    return fields, tiles


def query_key(source, project):
    """A short digest of exactly the node that ran and the project settings its answer depends on (time zone,
    week start), so a kept result is only reused for the same question."""
    key = [source, project["timezone"], project["week_start_day"]]
    return hashlib.sha256(orjson.dumps(key, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def who(key_id, user_id, emails):
    """PostHog's `created_by` user: a console user, or (for API changes) the personal API key."""
    if user_id is not None:
        return {"id": user_id, "email": emails.get(user_id), "first_name": "", "last_name": ""}
    if key_id is not None:
        return {"personal_api_key_id": key_id}
    return None


def insight_json(row, tiles, cached, project, emails, basic=False):
    """An insight as PostHog's InsightSerializer shows it. `cached` is (response, computed_at, fresh, size) of
    its result (fresh: computed by this request), or None."""
    out = {
        "id": row["id"], "short_id": row["short_id"], "name": row["name"], "derived_name": None,
        "favorited": row["favorited"], "tags": row["tags"], "created_at": iso(row["created_at"]),
        "created_by": who(row["created_by_key"], row["created_by_user"], emails),
        "last_modified_at": iso(row["last_modified_at"]),
        "last_modified_by": who(row["last_modified_by_key"], row["last_modified_by_user"], emails),
        "description": row["description"], "deleted": row["deleted"], "saved": row["saved"],
        "dashboards": [t["dashboard_id"] for t in tiles],
        "last_viewed_at": None, "is_sample": False,
    }
    if basic:
        return out
    response, computed_at, fresh, _size = cached or ({}, None, False, 0)
    out.update({
        "query": row["query"], "filters": {}, "order": None,
        "dashboard_tiles": tiles,
        "result": response.get("results"),
        "hasMore": response.get("hasMore"), "columns": response.get("columns"), "types": response.get("types"),
        "hogql": response.get("hogql"), "resolved_date_range": response.get("resolved_date_range"),
        "last_refresh": iso(computed_at),
        "next_allowed_client_refresh": iso(computed_at + 60_000) if computed_at is not None else None,
        "cache_target_age": None,
        "is_cached": cached is not None and not fresh,
        "query_status": None,
        "timezone": project["timezone"],
        "updated_at": iso(row["updated_at"]),
        "effective_restriction_level": 21, "effective_privilege_level": 37, "user_access_level": "editor",
        "alerts": [],
    })
    return out


def dashboard_json(row, emails, tiles=None):
    """A dashboard as PostHog's DashboardBasicSerializer shows it; with `tiles` (already shaped), the full one."""
    out = {
        "id": row["id"], "name": row["name"], "description": row["description"], "pinned": row["pinned"],
        "created_at": iso(row["created_at"]), "created_by": who(row["created_by_key"], row["created_by_user"], emails),
        "last_accessed_at": None, "is_shared": False, "deleted": row["deleted"],
        "creation_mode": row["creation_mode"], "tags": row["tags"], "restriction_level": 21,
        "effective_restriction_level": 21, "effective_privilege_level": 37, "user_access_level": "editor",
    }
    if tiles is not None:
        out.update({"team_id": row["project_id"], "filters": row["filters"], "variables": {}, "tiles": tiles})
    return out


def tile_json(tile, insight, order):
    """One dashboard tile; `insight` is the shaped insight (None for a text tile)."""
    return {
        "id": tile["id"], "insight": insight,
        "text": {"body": tile["text"]} if tile["text"] is not None else None,
        "layouts": tile["layouts"], "color": tile["color"], "order": order, "deleted": False,
        "last_refresh": insight["last_refresh"] if insight else None,
        "is_cached": insight["is_cached"] if insight else False,
    }


def activity_json(entry, render):
    """One activity-log entry (as the flags' log shows theirs): who, when, which fields changed."""
    before = None if entry["before"] is None else render(entry["before"])
    after = None if entry["after"] is None else render(entry["after"])
    changes = []
    if before is not None and after is not None:
        changes = [{"type": entry["scope"], "action": "changed", "field": k, "before": before.get(k),
                    "after": after.get(k)}
                   for k in after if k not in ("updated_at", "last_modified_at") and before.get(k) != after.get(k)]
    return {
        "id": entry["id"], "activity": entry["activity"], "scope": entry["scope"], "item_id": str(entry["item_id"]),
        "created_at": iso(entry["created_at"]),
        "user": who(entry["key_id"], entry["user_id"], {}),
        "detail": {"name": (after or before or {}).get("name"), "changes": changes},
    }
