"""Creating and changing flags and cohorts: the checks every write runs (the same for the JSON API
and the console), inside the store's write transaction so they see what the write commits against.

`actor` says who: {"key_id": personal API key id} from the API, {"user_id": console user id} from
the console; the activity log keeps both columns.
"""

from phlite import errors
from phlite.flags.definitions import check_filters, clean_cohort, clean_flag, dependents, flags_using_cohort


def create_flag(store, project_id, body, actor):
    """(the new row, warnings)."""
    warnings: list = []
    fields = clean_flag(body, warnings=warnings)
    found: list = []

    def check():
        rows, cohorts = store.load_flag_definitions(project_id)
        found[:] = check_filters(fields["filters"], None, fields["key"], set(cohorts), rows)

    row = store.create_flag(project_id, fields, actor.get("key_id"), check=check, user_id=actor.get("user_id"))
    return row, warnings + found


def update_flag(store, project_id, flag_id, body, actor, put=False):
    """(the new row or None if there is no such flag, warnings)."""
    warnings: list = []

    def change(current):
        warnings.clear()  # the store may retry the transaction
        fields = clean_flag(body, current, require_key=put, warnings=warnings)
        after = {**current, **fields}
        if after["deleted"]:
            if not current["deleted"]:
                rows, _ = store.load_flag_definitions(project_id)
                users = dependents(rows, current)
                if users:
                    raise errors.BadRequest(
                        f"Cannot delete this flag: other flags depend on it ({', '.join(users)}).", attr="deleted"
                    )
        elif "filters" in fields or "key" in fields or current["deleted"]:
            rows, cohorts = store.load_flag_definitions(project_id)
            warnings.extend(check_filters(after["filters"], current["id"], after["key"], set(cohorts), rows))
        return fields

    row = store.update_flag(project_id, flag_id, change, actor.get("key_id"), user_id=actor.get("user_id"))
    return row, warnings


def create_cohort(store, project_id, body, actor):
    def prepare():
        return clean_cohort(body, None, store.load_flag_definitions(project_id)[1])

    return store.create_cohort(project_id, prepare, actor.get("key_id"), user_id=actor.get("user_id"))


def update_cohort(store, project_id, cohort_id, body, actor):
    """The new row, or None if there is no such cohort."""
    def change(current):
        rows, cohorts = store.load_flag_definitions(project_id)
        fields, ids = clean_cohort(body, current, cohorts)
        if fields.get("deleted") and not current["deleted"]:
            users = flags_using_cohort(rows, cohort_id)
            if users:
                raise errors.BadRequest(f"Cannot delete this cohort: flags use it ({', '.join(users)}).",
                                        attr="deleted")
        return fields, ids

    return store.update_cohort(project_id, cohort_id, change, actor.get("key_id"), user_id=actor.get("user_id"))
