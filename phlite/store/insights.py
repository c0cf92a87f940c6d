"""Saved insights, dashboards, their tiles, the last result of each insight, and their activity log
(docs/insights.md "Saved insights and dashboards").

Every read and write names its project: an id of another project's insight, dashboard or tile reads as
absent. `actor` is {"key_id": personal key id} for an API change, {"user_id": console user id} for a console
one (both columns are kept, as the flags' activity log does). Times are epoch ms given by the caller.
"""

import secrets
import string

import orjson

from phlite import errors

INSIGHT_COLUMNS = (
    "id", "project_id", "short_id", "name", "description", "query", "tags", "saved", "favorited", "deleted",
    "created_at", "created_by_key", "created_by_user", "last_modified_at", "last_modified_by_key",
    "last_modified_by_user", "updated_at",
)  # fmt: skip
INSIGHT_EDITABLE = ("name", "description", "query", "tags", "saved", "favorited", "deleted")
DASHBOARD_COLUMNS = (
    "id", "project_id", "name", "description", "pinned", "filters", "tags", "creation_mode", "deleted",
    "created_at", "created_by_key", "created_by_user", "updated_at",
)  # fmt: skip
DASHBOARD_EDITABLE = ("name", "description", "pinned", "filters", "tags", "deleted")
TILE_COLUMNS = ("id", "dashboard_id", "insight_id", "text", "layouts", "color", "deleted", "created_at")
TILE_EDITABLE = ("layouts", "color", "deleted", "text")
_JSON = {"query", "tags", "filters", "layouts"}
_BOOL = {"saved", "favorited", "deleted", "pinned"}
_SHORT_ID = string.ascii_letters + string.digits
CACHE_PER_INSIGHT = 8  # kept results per insight (its own query, and under each dashboard's filters)
MAX_TILES = 200  # tiles one dashboard may hold (each may run a query when the dashboard is refreshed)

_SELECT_INSIGHT = f"SELECT {', '.join(INSIGHT_COLUMNS)} FROM insight"
_SELECT_DASHBOARD = f"SELECT {', '.join(DASHBOARD_COLUMNS)} FROM dashboard"


def _dumps(value):
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _decode(columns, row):
    out = dict(zip(columns, row))
    for name in _JSON.intersection(out):
        if out[name] is not None:
            out[name] = orjson.loads(out[name])
    for name in _BOOL.intersection(out):
        out[name] = bool(out[name])
    return out


def _value(name, value):
    if name in _JSON and value is not None:
        return _dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _short_id():
    return "".join(secrets.choice(_SHORT_ID) for _ in range(8))


class InsightsMixin:
    # --- insights -----------------------------------------------------------------------------------

    def get_insight(self, project_id, insight_id):
        """The insight (deleted ones too), or None."""
        row = self.db.execute_sql(f"{_SELECT_INSIGHT} WHERE project_id = ? AND id = ?",
                                  (project_id, insight_id)).fetchone()
        return _decode(INSIGHT_COLUMNS, row) if row else None

    def list_insights(self, project_id, *, limit=100, offset=0, saved=None, favorited=None, short_id=None,
                      search=None, dashboard_id=None):
        """Non-deleted insights, last modified first: (rows, total count)."""
        where, params = ["i.project_id = ?", "i.deleted = 0"], [project_id]
        for column, value in (("saved", saved), ("favorited", favorited)):
            if value is not None:
                where.append(f"i.{column} = ?")
                params.append(int(value))
        if short_id is not None:
            where.append("i.short_id = ?")
            params.append(short_id)
        if search:
            where.append("(instr(lower(coalesce(i.name, '')), lower(?)) > 0"
                         " OR instr(lower(i.description), lower(?)) > 0)")
            params += [search, search]
        if dashboard_id is not None:
            where.append("EXISTS (SELECT 1 FROM dashboard_tile t WHERE t.insight_id = i.id AND t.deleted = 0"
                         " AND t.dashboard_id = ? AND t.project_id = i.project_id)")
            params.append(dashboard_id)
        text = " AND ".join(where)
        count = self.db.execute_sql(f"SELECT count(*) FROM insight i WHERE {text}", params).fetchone()[0]
        cols = ", ".join(f"i.{c}" for c in INSIGHT_COLUMNS)
        rows = self.db.execute_sql(
            f"SELECT {cols} FROM insight i WHERE {text} ORDER BY i.last_modified_at DESC, i.id DESC"
            " LIMIT ? OFFSET ?", [*params, limit, offset]).fetchall()
        return [_decode(INSIGHT_COLUMNS, r) for r in rows], count

    def create_insight(self, project_id, fields, dashboard_ids, actor, now):
        """Insert an insight (fields: INSIGHT_EDITABLE columns) with a tile on each of `dashboard_ids`."""
        columns = [c for c in INSIGHT_EDITABLE if c in fields]
        key, user = actor.get("key_id"), actor.get("user_id")
        with self.transaction():
            self._check_dashboards(project_id, dashboard_ids)
            while True:
                short_id = _short_id()
                if not self.db.execute_sql("SELECT 1 FROM insight WHERE project_id = ? AND short_id = ?",
                                           (project_id, short_id)).fetchone():
                    break
            cur = self.db.execute_sql(
                # A body with no editable field gives no column (a bare ", " was a syntax error, a 500).
                f"INSERT INTO insight (project_id, short_id, {''.join(f'{c}, ' for c in columns)}created_at,"
                " created_by_key, created_by_user, last_modified_at, last_modified_by_key, last_modified_by_user, updated_at)"
                f" VALUES ({', '.join('?' * (len(columns) + 9))})",
                [project_id, short_id, *(_value(c, fields[c]) for c in columns), now, key, user, now, key, user,
                 now])
            insight_id = cur.lastrowid
            for dashboard_id in dict.fromkeys(dashboard_ids or ()):
                self._add_tile(project_id, dashboard_id, insight_id, None, {}, None, now)
            insight = self.get_insight(project_id, insight_id)
            self._log_activity(project_id, "Insight", insight_id, "created", key, None, insight, now, user)
        return insight

    def update_insight(self, project_id, insight_id, change, actor, now):
        """Apply `change(current) -> ({column: value}, dashboard ids or None)` atomically: the new row, or
        None if there is no such insight. A dashboards list replaces the insight's tiles (kept where the
        insight stays, added where it is new, deleted where it left). Nothing is written if nothing changes."""
        key, user = actor.get("key_id"), actor.get("user_id")
        with self.transaction():
            before = self.get_insight(project_id, insight_id)
            if before is None:
                return None
            fields, dashboard_ids = change(before)
            updates = {c: v for c, v in fields.items() if c in INSIGHT_EDITABLE and before[c] != v}
            moved = False
            if dashboard_ids is not None:
                self._check_dashboards(project_id, dashboard_ids)
                moved = self._set_insight_dashboards(project_id, insight_id, dashboard_ids, now)
            if not updates and not moved:
                return before
            sets = "".join(f"{c} = ?, " for c in updates)
            # Favouriting is not a modification in PostHog (last_modified_* stay).
            modified = set(updates) - {"favorited"} or moved
            stamp = "last_modified_at = ?, last_modified_by_key = ?, last_modified_by_user = ?, " if modified else ""
            self.db.execute_sql(
                f"UPDATE insight SET {sets}{stamp}updated_at = ? WHERE project_id = ? AND id = ?",
                [*(_value(c, v) for c, v in updates.items()), *((now, key, user) if modified else ()), now,
                 project_id, insight_id])
            after = self.get_insight(project_id, insight_id)
            activity = ("deleted" if updates.get("deleted") else "restored" if updates.get("deleted") is False
                        else "updated")
            self._log_activity(project_id, "Insight", insight_id, activity, key, before, after, now, user)
        return after

    def insight_tiles(self, project_id, insight_ids):
        """{insight id: [{"id", "dashboard_id", "deleted"}]}: the tiles of those insights on live dashboards."""
        ids = list(dict.fromkeys(insight_ids))
        out = {i: [] for i in ids}
        if not ids:
            return out
        rows = self.db.execute_sql(
            "SELECT t.insight_id, t.id, t.dashboard_id FROM dashboard_tile t JOIN dashboard d ON d.id = t.dashboard_id"
            " AND d.project_id = t.project_id AND d.deleted = 0 WHERE t.project_id = ? AND t.deleted = 0"
            f" AND t.insight_id IN ({', '.join('?' * len(ids))}) ORDER BY t.id", [project_id, *ids]).fetchall()
        for insight_id, tile_id, dashboard_id in rows:
            out[insight_id].append({"id": tile_id, "dashboard_id": dashboard_id, "deleted": False})
        return out

    def _check_dashboards(self, project_id, dashboard_ids):
        if not dashboard_ids:
            return
        ids = list(dict.fromkeys(dashboard_ids))
        found = {r[0] for r in self.db.execute_sql(
            f"SELECT id FROM dashboard WHERE project_id = ? AND deleted = 0 AND id IN ({', '.join('?' * len(ids))})",
            [project_id, *ids]).fetchall()}
        missing = [i for i in ids if i not in found]
        if missing:
            raise errors.BadRequest(f"Dashboard {missing[0]} does not exist in this project.", attr="dashboards")

    def _set_insight_dashboards(self, project_id, insight_id, dashboard_ids, now):
        wanted = list(dict.fromkeys(dashboard_ids))
        live = {r[1]: r[0] for r in self.db.execute_sql(
            "SELECT id, dashboard_id FROM dashboard_tile WHERE project_id = ? AND insight_id = ? AND deleted = 0",
            (project_id, insight_id)).fetchall()}
        changed = False
        for dashboard_id, tile_id in live.items():
            if dashboard_id not in wanted:
                self.db.execute_sql("UPDATE dashboard_tile SET deleted = 1 WHERE id = ?", (tile_id,))
                changed = True
        for dashboard_id in wanted:
            if dashboard_id not in live:
                self._add_tile(project_id, dashboard_id, insight_id, None, {}, None, now)
                changed = True
        return changed

    def _add_tile(self, project_id, dashboard_id, insight_id, text, layouts, color, now):
        count = self.db.execute_sql("SELECT count(*) FROM dashboard_tile WHERE dashboard_id = ? AND deleted = 0",
                                    (dashboard_id,)).fetchone()[0]
        if count >= MAX_TILES:
            raise errors.BadRequest(f"A dashboard holds at most {MAX_TILES} tiles.", attr="tiles")
        cur = self.db.execute_sql(
            "INSERT INTO dashboard_tile (project_id, dashboard_id, insight_id, text, layouts, color, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", (project_id, dashboard_id, insight_id, text, _dumps(layouts), color, now))
        return cur.lastrowid

    # --- dashboards ---------------------------------------------------------------------------------

    def get_dashboard(self, project_id, dashboard_id):
        """The dashboard (deleted ones too), or None."""
        row = self.db.execute_sql(f"{_SELECT_DASHBOARD} WHERE project_id = ? AND id = ?",
                                  (project_id, dashboard_id)).fetchone()
        return _decode(DASHBOARD_COLUMNS, row) if row else None

    def list_dashboards(self, project_id, *, limit=100, offset=0, pinned=None, search=None):
        """Non-deleted dashboards, oldest first: (rows, total count)."""
        where, params = "project_id = ? AND deleted = 0", [project_id]
        if pinned is not None:
            where += " AND pinned = ?"
            params.append(int(pinned))
        if search:
            where += " AND instr(lower(coalesce(name, '')), lower(?)) > 0"
            params.append(search)
        count = self.db.execute_sql(f"SELECT count(*) FROM dashboard WHERE {where}", params).fetchone()[0]
        rows = self.db.execute_sql(f"{_SELECT_DASHBOARD} WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
                                   [*params, limit, offset]).fetchall()
        return [_decode(DASHBOARD_COLUMNS, r) for r in rows], count

    def create_dashboard(self, project_id, fields, actor, now, copy_from=None):
        """Insert a dashboard; with `copy_from` (a dashboard id of the project) its live tiles are copied."""
        columns = [c for c in DASHBOARD_EDITABLE if c in fields]
        key, user = actor.get("key_id"), actor.get("user_id")
        with self.transaction():
            if copy_from is not None:
                source = self.get_dashboard(project_id, copy_from)
                if source is None or source["deleted"]:
                    raise errors.BadRequest(f"Dashboard {copy_from} does not exist in this project.",
                                            attr="use_dashboard")
            cur = self.db.execute_sql(
                f"INSERT INTO dashboard (project_id, {''.join(f'{c}, ' for c in columns)}creation_mode, created_at,"
                f" created_by_key, created_by_user, updated_at) VALUES ({', '.join('?' * (len(columns) + 6))})",
                [project_id, *(_value(c, fields[c]) for c in columns),
                 "duplicate" if copy_from is not None else "default", now, key, user, now])
            dashboard_id = cur.lastrowid
            if copy_from is not None:
                for tile in self.dashboard_tiles(project_id, copy_from):
                    self._add_tile(project_id, dashboard_id, tile["insight_id"], tile["text"], tile["layouts"],
                                   tile["color"], now)
            dashboard = self.get_dashboard(project_id, dashboard_id)
            self._log_activity(project_id, "Dashboard", dashboard_id, "created", key, None, dashboard, now, user)
        return dashboard

    def update_dashboard(self, project_id, dashboard_id, change, actor, now):
        """Apply `change(current) -> ({column: value}, tile edits)` atomically: the new row, or None if there is
        no such dashboard. A tile edit is {"id": tile id, TILE_EDITABLE column: value...} for a tile of this
        dashboard, or a new tile {"insight_id": id} / {"text": body} with optional "layouts" and "color"."""
        key, user = actor.get("key_id"), actor.get("user_id")
        with self.transaction():
            before = self.get_dashboard(project_id, dashboard_id)
            if before is None:
                return None
            fields, tile_edits = change(before)
            updates = {c: v for c, v in fields.items() if c in DASHBOARD_EDITABLE and before[c] != v}
            tiles_changed = self._edit_tiles(project_id, dashboard_id, tile_edits or (), now)
            if not updates and not tiles_changed:
                return before
            sets = "".join(f"{c} = ?, " for c in updates)
            self.db.execute_sql(f"UPDATE dashboard SET {sets}updated_at = ? WHERE project_id = ? AND id = ?",
                                [*(_value(c, v) for c, v in updates.items()), now, project_id, dashboard_id])
            after = self.get_dashboard(project_id, dashboard_id)
            activity = ("deleted" if updates.get("deleted") else "restored" if updates.get("deleted") is False
                        else "updated")
            self._log_activity(project_id, "Dashboard", dashboard_id, activity, key, before, after, now, user)
        return after

    def _edit_tiles(self, project_id, dashboard_id, edits, now):
        changed = False
        for edit in edits:
            if "id" in edit:
                row = self.db.execute_sql(
                    f"SELECT {', '.join(TILE_COLUMNS)} FROM dashboard_tile WHERE project_id = ? AND dashboard_id = ?"
                    " AND id = ?", (project_id, dashboard_id, edit["id"])).fetchone()
                if row is None:
                    raise errors.BadRequest(f"Tile {edit['id']} is not on this dashboard.", attr="tiles")
                tile = _decode(TILE_COLUMNS, row)
                updates = {c: edit[c] for c in TILE_EDITABLE if c in edit and tile[c] != edit[c]}
                if updates:
                    self.db.execute_sql(
                        f"UPDATE dashboard_tile SET {', '.join(f'{c} = ?' for c in updates)} WHERE id = ?",
                        [*(_value(c, v) for c, v in updates.items()), edit["id"]])
                    changed = True
                continue
            insight_id = edit.get("insight_id")
            if insight_id is not None:
                insight = self.get_insight(project_id, insight_id)
                if insight is None or insight["deleted"]:
                    raise errors.BadRequest(f"Insight {insight_id} does not exist in this project.", attr="tiles")
            self._add_tile(project_id, dashboard_id, insight_id, edit.get("text"), edit.get("layouts") or {},
                           edit.get("color"), now)
            changed = True
        return changed

    def dashboard_tiles(self, project_id, dashboard_id):
        """The dashboard's live tiles in order, each with "insight": its insight row (None for a text tile);
        tiles of deleted insights are left out."""
        cols = ", ".join(f"t.{c}" for c in TILE_COLUMNS)
        icols = ", ".join(f"i.{c}" for c in INSIGHT_COLUMNS)
        rows = self.db.execute_sql(
            f"SELECT {cols}, {icols} FROM dashboard_tile t LEFT JOIN insight i ON i.id = t.insight_id"
            " AND i.project_id = t.project_id WHERE t.project_id = ? AND t.dashboard_id = ? AND t.deleted = 0"
            " AND (t.insight_id IS NULL OR i.deleted = 0) ORDER BY t.id LIMIT ?",
            (project_id, dashboard_id, MAX_TILES)).fetchall()
        n = len(TILE_COLUMNS)
        out = []
        for row in rows:
            tile = _decode(TILE_COLUMNS, row[:n])
            tile["insight"] = _decode(INSIGHT_COLUMNS, row[n:]) if tile["insight_id"] is not None else None
            out.append(tile)
        return out

    # --- the last result of each insight ------------------------------------------------------------

    def get_insight_cache(self, project_id, insight_id, query_key):
        """(response JSON text, computed_at) of the insight's last result for exactly this query, or None."""
        row = self.db.execute_sql(
            "SELECT response, computed_at FROM insight_cache WHERE insight_id = ? AND query_key = ?"
            " AND project_id = ?", (insight_id, query_key, project_id)).fetchone()
        return (row[0], row[1]) if row else None

    def put_insight_cache(self, project_id, insight_id, query_key, response_text, now):
        """Keep a result; an insight keeps the results of its CACHE_PER_INSIGHT latest queries."""
        with self.transaction():
            self.db.execute_sql(
                "INSERT OR REPLACE INTO insight_cache (insight_id, query_key, project_id, response, computed_at)"
                " VALUES (?, ?, ?, ?, ?)", (insight_id, query_key, project_id, response_text, now))
            self.db.execute_sql(
                "DELETE FROM insight_cache WHERE insight_id = ? AND query_key NOT IN (SELECT query_key FROM"
                " insight_cache WHERE insight_id = ? ORDER BY computed_at DESC LIMIT ?)",
                (insight_id, insight_id, CACHE_PER_INSIGHT))
