"""Repair distinct ids left pointing at a person that was never written.

Before this version, a person stored earlier and merged into a person created in the same group commit,
which was then merged again in that commit, left the stored person's distinct ids (and flag hash-key
overrides) pointing at the middle person's id, which was never written (fixed in
phlite/ingest/persons.py: `_Person.stored`). Such ids had no person: the persons API did not find them
and a later `$set` or merge on one was quarantined.

Which person they should have joined is not recorded anywhere, so each group of such ids (those sharing
the missing id) becomes one identified person of its own under that id, with no properties and the time
of its first event. A later merge joins it to the right one as any two persons are joined.
"""

VERSION = 12

_RANDOM_UUID = (
    "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-'"
    " || substr('89ab', 1 + abs(random()) % 4, 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))"
)

STATEMENTS = [
    f"""INSERT INTO person (id, project_id, uuid, properties, created_at, is_identified)
        SELECT d.person_id, d.project_id, {_RANDOM_UUID}, '{{}}',
               coalesce(min((SELECT min(e.timestamp) FROM event e
                             WHERE e.project_id = d.project_id AND e.distinct_id = d.distinct_id)),
                        CAST(strftime('%s', 'now') AS INTEGER) * 1000),
               1
        FROM person_distinct_id d
        WHERE NOT EXISTS (SELECT 1 FROM person p WHERE p.id = d.person_id)
        GROUP BY d.person_id, d.project_id""",
]
