"""The tables a HogQL query may read, each as a subquery over phlite's store filtered to one project.

Pure: SQL text only (the store executes it). Every table reference in a query becomes one of these
subqueries, so a query cannot see another project's rows nor any other table
(docs/insights.md "What a HogQL query can read").
"""

from phlite.query.rollup import HOUR_MS

DT, DATE, STR, INT, FLOAT, BOOL, ANY = "DateTime", "Date", "String", "Int", "Float", "Bool", None

# name -> {field: type}; `properties` is JSON text. Order is the order of `SELECT *`.
FIELDS = {
    "events": {"uuid": STR, "event": STR, "properties": STR, "timestamp": DT, "distinct_id": STR,
               "elements_chain": STR, "created_at": DT, "$session_id": STR, "$window_id": STR, "person_id": STR},
    "persons": {"id": STR, "created_at": DT, "properties": STR, "is_identified": BOOL},
    "person_distinct_ids": {"distinct_id": STR, "person_id": STR},
    "groups": {"index": INT, "key": STR, "created_at": DT, "updated_at": DT, "properties": STR},
}
# Fields a query may name that `SELECT *` leaves out (lazy joins in PostHog).
HIDDEN = {"events": {"__person_properties": STR, "__person_created_at": DT, "__actor": ANY, "team_id": INT,
                    "__n": INT}}


# How much of the person an events subquery joins: none, the distinct id's person row id (enough to
# count persons: `__actor`), or the person itself (uuid, properties, created_at).
NO_PERSON, PERSON_KEY, PERSON_ROW = 0, 1, 2


def _prop(name, materialized):
    col = materialized.get(name)
    return f"e.{col}" if col else f"ph_prop(CAST(e.properties AS TEXT) -> '$.\"{name}\"')"


_COLUMNS = ("SELECT NULL AS __rowid, NULL AS uuid, {t}.event AS event, NULL AS properties, {hour} AS timestamp,"
            " {t}.distinct_id AS distinct_id, NULL AS elements_chain, NULL AS created_at, NULL AS \"$session_id\","
            " NULL AS \"$window_id\", NULL AS person_id, NULL AS __person_properties, NULL AS __person_created_at,"
            " {actor} AS __actor, {n} AS __n, {pid} AS team_id, {dims} FROM {table}{joins}")
# The event properties the roll-up is keyed by too (migration m0014), as the materialized columns the
# compiler names: {property: (event column, roll-up column)}. The roll-up holds x'' for "no value".
ROLLUP_DIMS = {"$browser": ("mp_browser", "browser"), "$os": ("mp_os", "os"),
               "$device_type": ("mp_device_type", "device_type")}


def _ranges(hours):
    """Sorted UTC hours -> [(start, end)) ranges of consecutive ones."""
    out = []
    for h in hours:
        if out and out[-1][1] == h:
            out[-1][1] = h + HOUR_MS
        else:
            out.append([h, h + HOUR_MS])
    return out


def rollup_subquery(pid, person, marked=(), dims=False):
    """`events` as the hourly roll-up `event_hour` (migrations m0011, m0014): one row per event name, UTC
    hour, distinct id and ROLLUP_DIMS values, `__n` its events. Only an insight runner asks for it, for
    questions that read no more than event, hour, person and those properties' materialized columns; every
    other field is NULL. The `marked` hours (ints: the roll-up
    has not recounted them yet) come from the events instead, one row per event."""
    def part(t, table, hour, n):
        actor, joins = "NULL", ""
        if person != NO_PERSON:
            actor = f"coalesce(pdi.person_id, {t}.distinct_id)"
            joins = (f" LEFT JOIN person_distinct_id pdi ON pdi.project_id = {t}.project_id"
                     f" AND pdi.distinct_id = {t}.distinct_id")
        if not dims:
            columns = ", ".join(f"NULL AS __mp_{c}" for c, _r in ROLLUP_DIMS.values())
        elif t == "h":
            columns = ", ".join(f"nullif(h.{r}, x'') AS __mp_{c}" for c, r in ROLLUP_DIMS.values())
        else:
            columns = ", ".join(f"e.{c} AS __mp_{c}" for c, _r in ROLLUP_DIMS.values())
        return _COLUMNS.format(t=t, table=table, hour=hour, actor=actor, n=n, pid=pid, joins=joins, dims=columns)

    rolled = part("h", "event_hour h", "h.hour", "h.n") + f" WHERE h.project_id = {pid}"
    if not marked:
        return rolled
    hours = sorted({int(h) for h in marked})
    rolled += f" AND h.hour NOT IN ({', '.join(map(str, hours))})"
    spans = " OR ".join(f"(e.timestamp >= {a} AND e.timestamp < {b})" for a, b in _ranges(hours))
    raw = (part("e", "event e", f"e.timestamp - ((e.timestamp % {HOUR_MS}) + {HOUR_MS}) % {HOUR_MS}", "1")
           + f" WHERE e.project_id = {pid} AND ({spans})")
    return f"{rolled} UNION ALL {raw}"


def day_rollup_subquery(pid, person, marked, days):
    """`events` as the daily roll-up `actor_day` (migration m0015): one row per event name, day start in
    the project's zone (as `timestamp`), and person after merges (`__actor`; the distinct id of an event
    without a person), `__n` its events. The `days` ((start, end) ms, UTC hours) come from the hourly
    roll-up instead, with its `marked` hours from the events (rollup_subquery). Only a trends runner asks
    for it, for questions that read no more than event, day and person."""
    rolled = _COLUMNS.format(t="a", table="actor_day a", hour="a.day", actor="a.actor", n="a.n", pid=pid, joins="",
                             dims=", ".join(f"NULL AS __mp_{c}" for c, _r in ROLLUP_DIMS.values()))
    rolled = rolled.replace("a.distinct_id AS distinct_id", "NULL AS distinct_id") + f" WHERE a.project_id = {pid}"
    if not days:
        return rolled
    rolled += f" AND a.day NOT IN ({', '.join(str(int(d)) for d, _e in days)})"
    spans = " OR ".join(f"(timestamp >= {int(d)} AND timestamp < {int(e)})" for d, e in days)
    hourly = rollup_subquery(pid, person, [h for h in marked if any(d <= h < e for d, e in days)])
    return f"{rolled} UNION ALL SELECT * FROM ({hourly}) WHERE {spans}"


def _text(value):
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def day_counts_sql(pid, event, lo, hi, skip=()):
    """Per day of [lo, hi] (ms) in the daily roll-up `actor_day`: (day start, events, persons) of one event,
    leaving out the days starting at `skip`. A (event, day, person) key is one row, so the persons are its
    rows: no distinct count. The day's order is the key's, so SQLite groups without sorting."""
    sql = (f"SELECT day, sum(n), count(*) FROM actor_day WHERE project_id = {int(pid)} AND event = {_text(event)}"
           f" AND day >= {int(lo)} AND day <= {int(hi)}")
    if skip:
        sql += f" AND day NOT IN ({', '.join(str(int(d)) for d in skip)})"
    return sql + " GROUP BY day"


def session_hour_sql(pid, lo, hi, marked=()):
    """Per `$session_id`: (session, first, last, views, autocaptures, least pageview distinct id) over the
    events of [lo, hi) (UTC hours), from the roll-up `session_hour` (migration m0013) with its `marked`
    hours (not recounted yet) read from the events, as `rollup_subquery` does. Sessions without a pageview
    or screen in the range are left out."""
    pid, lo, hi = int(pid), int(lo), int(hi)
    hours = sorted({int(h) for h in marked if lo <= int(h) < hi})
    rolled = (f"SELECT session_id AS s, first, last, views, autocaptures, visitor FROM session_hour"
              f" WHERE project_id = {pid} AND hour >= {lo} AND hour < {hi}")
    if hours:
        rolled += f" AND hour NOT IN ({', '.join(map(str, hours))})"
        spans = " OR ".join(f"(timestamp >= {a} AND timestamp < {b})" for a, b in _ranges(hours))
        rolled += (" UNION ALL SELECT mp_session_id, min(timestamp), max(timestamp),"
                   " sum(event IN ('$pageview', '$screen')), sum(event = '$autocapture'),"
                   " min(CASE WHEN event IN ('$pageview', '$screen') THEN distinct_id END)"
                   f" FROM event WHERE project_id = {pid} AND mp_session_id IS NOT NULL AND ({spans})"
                   " GROUP BY mp_session_id")
    return (f"SELECT s, min(first) AS first, max(last) AS last, sum(views) AS views, sum(autocaptures) AS autocaptures,"
            f" min(visitor) AS visitor FROM ({rolled})"
            " GROUP BY s HAVING sum(views) > 0")


def web_metrics_sql(pid, sessions_sql, lo, bounce_seconds):
    """The web overview's five numbers over `sessions_sql`'s sessions (see session_hour_sql) that start at
    or after `lo`: distinct visitors (the person of the session's least pageview distinct id, after merges),
    views, sessions, mean duration in whole seconds, and the bounce rate in percent (one pageview, no
    autocapture, shorter than `bounce_seconds`). NULL duration and bounce rate when there is no session."""
    pid, lo = int(pid), int(lo)
    seconds = "(g.last - g.first) / 1000"  # whole seconds: both are integer ms
    bounced = f"NOT (g.views > 1 OR g.autocaptures > 0 OR {seconds} >= {int(bounce_seconds)})"
    return ("SELECT count(DISTINCT coalesce(pdi.person_id, g.visitor)), coalesce(sum(g.views), 0), count(*),"
            f" avg({seconds}), 100.0 * sum({bounced}) / nullif(count(*), 0)"
            f" FROM ({sessions_sql}) AS g LEFT JOIN person_distinct_id pdi ON pdi.project_id = {pid}"
            f" AND pdi.distinct_id = g.visitor WHERE g.first >= {lo}")


def subquery(table, project_id, materialized=None, person=PERSON_ROW, rollup=False, rollup_marked=(), rollup_dims=False,
             rollup_days=None):
    """The SELECT standing in for `table`, for project `project_id` (an int, never text).

    `materialized` ({property: column}, columns the query may read) adds each column as `__mp_<column>`
    and reads `$session_id` from its column when it has one. `person` says which person joins the query
    needs (SQLite does not drop unused LEFT JOINs of a flattened subquery: they cost a lookup per row)."""
    pid = int(project_id)
    materialized = materialized or {}
    if table == "events" and rollup and rollup_days is not None:
        return day_rollup_subquery(pid, person, rollup_marked, rollup_days)
    if table == "events" and rollup:
        return rollup_subquery(pid, person, rollup_marked, rollup_dims)
    if table == "events":
        # The person of an event is the current person of its distinct id, so after a merge every
        # distinct id of a person (past events included) counts as that person.
        if person == PERSON_ROW:
            persons = (" p.uuid AS person_id, p.properties AS __person_properties, p.created_at AS __person_created_at,"
                       " coalesce(pdi.person_id, e.distinct_id) AS __actor,")
            joins = (" LEFT JOIN person_distinct_id pdi ON pdi.project_id = e.project_id AND pdi.distinct_id = e.distinct_id"
                     " LEFT JOIN person p ON p.id = pdi.person_id")
        elif person == PERSON_KEY:
            persons = (" NULL AS person_id, NULL AS __person_properties, NULL AS __person_created_at,"
                       " coalesce(pdi.person_id, e.distinct_id) AS __actor,")
            joins = " LEFT JOIN person_distinct_id pdi ON pdi.project_id = e.project_id AND pdi.distinct_id = e.distinct_id"
        else:
            persons = " NULL AS person_id, NULL AS __person_properties, NULL AS __person_created_at, NULL AS __actor,"
            joins = ""
        mats = "".join(f" e.{c} AS __mp_{c}," for c in materialized.values())
        return (
            "SELECT e.id AS __rowid, ph_uuid(e.uuid) AS uuid, e.event AS event, CAST(e.properties AS TEXT) AS properties,"
            " e.timestamp AS timestamp, e.distinct_id AS distinct_id,"
            " coalesce(ph_prop(CAST(e.properties AS TEXT) -> '$.\"$elements_chain\"'), '') AS elements_chain,"
            " e.created_at AS created_at,"
            f" {_prop('$session_id', materialized)} AS \"$session_id\","
            f" {_prop('$window_id', materialized)} AS \"$window_id\","
            f"{persons}{mats}"
            f" 1 AS __n, {pid} AS team_id"
            f" FROM event e{joins}"
            f" WHERE e.project_id = {pid}"
        )
    if table == "persons":
        return ("SELECT p.uuid AS id, p.created_at AS created_at, p.properties AS properties,"
                f" p.is_identified AS is_identified FROM person p WHERE p.project_id = {pid}")
    if table == "person_distinct_ids":
        return ("SELECT d.distinct_id AS distinct_id, p.uuid AS person_id FROM person_distinct_id d"
                f" JOIN person p ON p.id = d.person_id WHERE d.project_id = {pid}")
    if table == "groups":
        return ("SELECT g.group_type_index AS \"index\", g.group_key AS key, g.created_at AS created_at,"
                " g.created_at AS updated_at, g.properties AS properties"
                f" FROM group_ g WHERE g.project_id = {pid}")
    raise KeyError(table)


# The store tables those subqueries read: the read-only connection's authorizer allows no other.
# event_hour, session_hour and actor_day are the roll-ups the insight runners may read (a user's HogQL
# cannot name them). json_each is SQLite's table-valued JSON function (arrayJoin), reading no stored table.
STORE_TABLES = frozenset({"event", "event_hour", "session_hour", "actor_day", "person", "person_distinct_id",
                          "group_", "json_each"})
