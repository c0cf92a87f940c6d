"""Persons, distinct ids and groups: the reads flag evaluation needs (one query each).

Person writes happen only in the writer thread (see phlite/persons.py).
"""

import orjson


def _person(row):
    return {
        "id": row[0],
        "uuid": row[1],
        "properties": orjson.loads(row[2]),
        "created_at": row[3],
        "is_identified": bool(row[4]),
    }


class PersonsMixin:
    def get_person_by_distinct_id(self, project_id, distinct_id):
        """{"id", "uuid", "properties", "created_at", "is_identified"} or None."""
        row = self.db.execute_sql(
            "SELECT p.id, p.uuid, p.properties, p.created_at, p.is_identified FROM person_distinct_id d"
            " JOIN person p ON p.id = d.person_id WHERE d.project_id = ? AND d.distinct_id = ?",
            (project_id, distinct_id),
        ).fetchone()
        return _person(row) if row else None

    def group_type_mapping(self, project_id):
        """{group_type_index: group_type name}"""
        rows = self.db.execute_sql(
            "SELECT group_type_index, group_type FROM group_type WHERE project_id = ? ORDER BY group_type_index",
            (project_id,),
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def get_group(self, project_id, group_type_index, group_key):
        """{"group_type_index", "group_key", "group_properties", "created_at"} or None."""
        row = self.db.execute_sql(
            "SELECT group_type_index, group_key, properties, created_at FROM group_"
            " WHERE project_id = ? AND group_type_index = ? AND group_key = ?",
            (project_id, group_type_index, group_key),
        ).fetchone()
        if row is None:
            return None
        return {"group_type_index": row[0], "group_key": row[1], "group_properties": orjson.loads(row[2]),
                "created_at": row[3]}
