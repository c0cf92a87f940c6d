"""The flag and cohort forms: flat form fields <-> the same `filters` objects the JSON API takes
(docs/flags-protocol.md "Flags: definition format"), so the console never invents a second meaning
of a flag. Pure. Adding or removing a row is a submit button (`action`), so the forms need no script.

Field names: `c{i}.set` (marks condition set i), `c{i}.rollout`, `c{i}.variant`,
`c{i}.p{j}.kind|key|op|value` for release conditions (cohorts use the same sets, without rollout);
`v{k}.key|pct|payload` for variants; `payload` for a boolean flag's payload.
"""

import re

import orjson

# PostHog's operators, by the type of value they compare (labels as its UI words them).
OPERATORS = {
    "Text": [("exact", "equals"), ("is_not", "doesn't equal"), ("icontains", "contains"),
             ("not_icontains", "doesn't contain"), ("regex", "matches regex"), ("not_regex", "doesn't match regex"),
             ("starts_with", "starts with"), ("ends_with", "ends with"), ("is_set", "is set"),
             ("is_not_set", "is not set")],
    "Number": [("gt", "greater than"), ("gte", "greater than or equal"), ("lt", "less than"),
               ("lte", "less than or equal"), ("between", "between (min, max)"), ("not_between", "not between")],
    "Date": [("is_date_before", "before"), ("is_date_after", "after"), ("is_date_exact", "on")],
    "Version": [("semver_eq", "version ="), ("semver_neq", "version ≠"), ("semver_gt", "version >"),
                ("semver_gte", "version ≥"), ("semver_lt", "version <"), ("semver_lte", "version ≤"),
                ("semver_tilde", "version ~ (patch)"), ("semver_caret", "version ^ (minor)"),
                ("semver_wildcard", "version wildcard (1.2.*)")],
}
OPERATOR_NAMES = {op for ops in OPERATORS.values() for op, _ in ops}
LIST_OPS = {"exact", "is_not"}
NO_VALUE_OPS = {"is_set", "is_not_set"}
PAIR_OPS = {"between", "not_between"}
NUMBER_OPS = {"gt", "gte", "lt", "lte"}
KINDS = ("person", "cohort", "group")
MAX_ROWS = 50  # conditions, properties per condition, variants: a form bigger than this is refused


def _number(text):
    try:
        n = float(text)
    except ValueError:
        return None
    return int(n) if n.is_integer() and "." not in text and "e" not in text.lower() else n


def value_from_text(op, text):
    """The filter `value` for an operator from what the user typed."""
    text = (text or "").strip()
    if op in NO_VALUE_OPS:
        return op
    if op in LIST_OPS:
        return [v.strip() for v in text.split(",") if v.strip()] or [text]
    if op in PAIR_OPS:
        parts = [p.strip() for p in text.split(",")]
        return [_number(p) if _number(p) is not None else p for p in parts]
    if op in NUMBER_OPS:
        n = _number(text)
        return n if n is not None else text
    return text


def hogql_string(text):
    """A HogQL string literal of any text (single quotes, backslash escapes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def value_to_text(value):
    if isinstance(value, list):
        return ", ".join(v if isinstance(v, str) else orjson.dumps(v).decode() for v in value)
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _rows(fields, pattern):
    """The row indexes present in the form for a name pattern like r"c(\\d+)\\.rollout"."""
    found = set()
    for name in fields:
        m = re.fullmatch(pattern, name)
        if m:
            found.add(int(m.group(1)))
    return sorted(found)[:MAX_ROWS]


def _prop_from_filter(f):
    kind = f.get("type") if f.get("type") in KINDS else "person"
    if kind == "cohort":
        return {"kind": "cohort", "key": "id", "op": "in", "value": value_to_text(f.get("value")), "group": ""}
    return {"kind": kind, "key": str(f.get("key", "")), "op": f.get("operator") or "exact",
            "value": "" if f.get("operator") in NO_VALUE_OPS else value_to_text(f.get("value")),
            "group": str(f.get("group_type_index", ""))}


def _prop_to_filter(p, aggregation):
    if p["kind"] == "cohort":
        v = p["value"].strip()
        return {"key": "id", "type": "cohort", "value": int(v) if v.isdigit() else v, "operator": "in"}
    op = p["op"] if p["op"] in OPERATOR_NAMES else "exact"
    out = {"key": p["key"].strip(), "type": p["kind"], "operator": op, "value": value_from_text(op, p["value"])}
    if p["kind"] == "group":
        out["group_type_index"] = aggregation
    return out


def empty_condition():
    return {"rollout": "100", "variant": "", "props": []}


def empty_prop():
    return {"kind": "person", "key": "", "op": "exact", "value": "", "group": ""}


def flag_form(row=None):
    """The form's values for a stored flag row (or a new flag)."""
    if row is None:
        return {"key": "", "name": "", "active": True, "continuity": False, "aggregation": "",
                "conditions": [empty_condition()], "variants": [], "payload": ""}
    filters = row.get("filters") or {}
    payloads = filters.get("payloads") or {}
    conditions = []
    for g in filters.get("groups") or []:
        rollout = g.get("rollout_percentage")
        conditions.append({"rollout": "100" if rollout is None else value_to_text(rollout),
                           "variant": g.get("variant") or "",
                           "props": [_prop_from_filter(f) for f in g.get("properties") or [] if isinstance(f, dict)]})
    variants = [{"key": v.get("key", ""), "pct": value_to_text(v.get("rollout_percentage")),
                 "payload": payloads.get(v.get("key"), "") or ""}
                for v in ((filters.get("multivariate") or {}).get("variants") or [])]
    agg = filters.get("aggregation_group_type_index")
    return {"key": row.get("key", ""), "name": row.get("name", ""), "active": bool(row.get("active")),
            "continuity": bool(row.get("ensure_experience_continuity")),
            "aggregation": "" if agg is None else str(agg), "conditions": conditions, "variants": variants,
            "payload": payloads.get("true", "") or ""}


def _conditions_from_fields(fields):
    get = lambda name: fields.get(name, "")  # noqa: E731
    conditions = []
    for i in _rows(fields, r"c(\d+)\.set"):
        props = []
        for j in _rows(fields, rf"c{i}\.p(\d+)\.kind"):
            pre = f"c{i}.p{j}."
            props.append({"kind": get(pre + "kind") if get(pre + "kind") in KINDS else "person",
                          "key": get(pre + "key"), "op": get(pre + "op") or "exact", "value": get(pre + "value"),
                          "group": ""})
        conditions.append({"rollout": get(f"c{i}.rollout"), "variant": get(f"c{i}.variant"), "props": props})
    return conditions


def flag_form_from_fields(fields):
    """The form's values as submitted (`fields`: name -> text)."""
    get = lambda name: fields.get(name, "")  # noqa: E731
    conditions = _conditions_from_fields(fields)
    variants = [{"key": get(f"v{k}.key"), "pct": get(f"v{k}.pct"), "payload": get(f"v{k}.payload")}
                for k in _rows(fields, r"v(\d+)\.key")]
    return {"key": get("key").strip(), "name": get("name"), "active": bool(get("active")),
            "continuity": bool(get("continuity")), "aggregation": get("aggregation"),
            "conditions": conditions, "variants": variants, "payload": get("payload")}


def apply_action(form, action):
    """Add or remove a row; returns True if `action` was one (the form is shown again, unsaved)."""
    parts = (action or "").split(":")
    try:
        idx = [int(p) for p in parts[1:]]
    except ValueError:
        return False
    name = parts[0]
    conds = form["conditions"]
    if name == "add_condition" and len(conds) < MAX_ROWS:
        conds.append(empty_condition())
    elif name == "remove_condition" and idx and idx[0] < len(conds):
        del conds[idx[0]]
    elif name == "add_property" and idx and idx[0] < len(conds) and len(conds[idx[0]]["props"]) < MAX_ROWS:
        conds[idx[0]]["props"].append(empty_prop())
    elif name == "remove_property" and len(idx) == 2 and idx[0] < len(conds) and idx[1] < len(conds[idx[0]]["props"]):
        del conds[idx[0]]["props"][idx[1]]
    elif name == "add_variant" and len(form["variants"]) < MAX_ROWS:
        form["variants"].append({"key": "", "pct": "", "payload": ""})
    elif name == "remove_variant" and idx and idx[0] < len(form["variants"]):
        del form["variants"][idx[0]]
    else:
        return False
    return True


def _json_text_problem(text):
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return 'Not JSON. Text needs quotes: "like this"; numbers, true/false, {…} and […] are JSON as they are.'
    return None


def _props(i, condition, aggregation, errors):
    """The filters of condition set i, noting what is missing in `errors`."""
    props = []
    for j, p in enumerate(condition["props"]):
        if p["kind"] != "cohort" and not p["key"].strip():
            errors[f"c{i}.p{j}.key"] = "Name the property."
        elif p["kind"] == "cohort" and not p["value"].strip().isdigit():
            errors[f"c{i}.p{j}.value"] = "Choose a cohort."
        elif p["kind"] != "cohort" and p["op"] not in NO_VALUE_OPS and not p["value"].strip():
            errors[f"c{i}.p{j}.value"] = "Enter a value."
        elif p["op"] in PAIR_OPS and len(value_from_text(p["op"], p["value"])) != 2:
            errors[f"c{i}.p{j}.value"] = "Two numbers: min, max."
        props.append(_prop_to_filter(p, aggregation))
    return props


def flag_body(form):
    """(the API body for clean_flag, {field name: error}) of a submitted flag form."""
    errors = {}
    aggregation = int(form["aggregation"]) if form["aggregation"].isdigit() else None
    groups = []
    for i, c in enumerate(form["conditions"]):
        rollout = _number(c["rollout"].strip()) if c["rollout"].strip() else 100
        if rollout is None or not 0 <= rollout <= 100:
            errors[f"c{i}.rollout"] = "A percentage from 0 to 100."
        props = _props(i, c, aggregation, errors)
        group = {"properties": props, "rollout_percentage": rollout if rollout is not None else 100}
        if c["variant"]:
            group["variant"] = c["variant"]
        groups.append(group)
    filters = {"groups": groups, "payloads": {}}
    if aggregation is not None:
        filters["aggregation_group_type_index"] = aggregation
    if form["variants"]:
        variants = []
        for k, v in enumerate(form["variants"]):
            pct = _number(v["pct"].strip())
            if not v["key"].strip():
                errors[f"v{k}.key"] = "Name the variant."
            if pct is None or not 0 <= pct <= 100:
                errors[f"v{k}.pct"] = "A percentage from 0 to 100."
            variants.append({"key": v["key"].strip(), "rollout_percentage": pct if pct is not None else 0})
            if v["payload"].strip():
                problem = _json_text_problem(v["payload"])
                if problem:
                    errors[f"v{k}.payload"] = problem
                filters["payloads"][v["key"].strip()] = v["payload"].strip()
        if not errors and round(sum(v["rollout_percentage"] for v in variants), 6) != 100:
            errors["variants"] = "The variants' percentages must add up to 100."
        filters["multivariate"] = {"variants": variants}
    elif form["payload"].strip():
        problem = _json_text_problem(form["payload"])
        if problem:
            errors["payload"] = problem
        filters["payloads"]["true"] = form["payload"].strip()
    if not re.fullmatch(r"[A-Za-z0-9_-]+", form["key"]):
        errors["key"] = "Only letters, digits, - and _."
    body = {"key": form["key"], "name": form["name"], "active": form["active"],
            "ensure_experience_continuity": form["continuity"], "filters": filters}
    return body, errors


def api_error_field(attr, detail):
    """The form field an API validation error (attr, detail with a path into filters) belongs beside."""
    if attr in ("key", "name"):
        return attr
    text = detail or ""
    m = re.search(r"groups\[(\d+)\]\.properties\[(\d+)\]", text)
    if m:
        return f"c{m.group(1)}.p{m.group(2)}.value"
    m = re.search(r"groups\[(\d+)\]\.variant", text)
    if m:
        return f"c{m.group(1)}.variant"
    m = re.search(r"groups\[(\d+)\]", text)
    if m:
        return f"c{m.group(1)}.rollout"
    m = re.search(r"multivariate\.variants\[(\d+)\]", text)
    if m:
        return f"v{m.group(1)}.key"
    if "variant" in text or "multivariate" in text:
        return "variants"
    if "payload" in text:
        return "payload"
    return "form"


# --- cohorts ----------------------------------------------------------------------------------------

MAX_STATIC_IDS = 100_000


def cohort_form(row=None):
    if row is None:
        return {"name": "", "description": "", "is_static": False, "conditions": [empty_condition()], "ids": ""}
    conditions = []
    root = ((row.get("filters") or {}).get("properties") or {})
    for group in root.get("values") or []:
        if isinstance(group, dict):
            conditions.append({"rollout": "", "variant": "", "props": [
                _prop_from_filter(f) for f in group.get("values") or [] if isinstance(f, dict) and "key" in f]})
    return {"name": row.get("name", ""), "description": row.get("description", "") or "",
            "is_static": bool(row.get("is_static")), "conditions": conditions, "ids": ""}


def cohort_form_from_fields(fields):
    return {"name": fields.get("name", "").strip(), "description": fields.get("description", ""),
            "is_static": fields.get("is_static") == "1", "conditions": _conditions_from_fields(fields),
            "ids": fields.get("ids", "")}


def distinct_ids_from_text(text):
    """Distinct ids pasted one per line (or comma-separated), or a CSV file's first column; a header
    row named distinct_id / id is skipped."""
    out, seen = [], set()
    for line in (text or "").replace("\r", "\n").split("\n"):
        for cell in (line.split(",") if "," in line else [line]):
            value = cell.strip().strip('"').strip()
            if value and value not in seen:
                seen.add(value)
                out.append(value)
            if "," in line:
                break  # CSV: the first column only
    if out and out[0].lower() in ("distinct_id", "distinct id", "id"):
        out = out[1:]
    return out[:MAX_STATIC_IDS + 1]


def cohort_body(form, uploaded_text=None, creating=True):
    """(the API body for clean_cohort, {field: error})."""
    errors = {}
    if not form["name"]:
        errors["name"] = "Name the cohort."
    body = {"name": form["name"], "description": form["description"]}
    if creating:
        body["is_static"] = form["is_static"]
    if form["is_static"]:
        ids = list(dict.fromkeys(distinct_ids_from_text(form["ids"]) + distinct_ids_from_text(uploaded_text)))
        if len(ids) > MAX_STATIC_IDS:
            errors["ids"] = f"At most {MAX_STATIC_IDS:,} distinct ids."
        if ids or creating:
            body["distinct_ids"] = ids
    else:
        groups = [{"type": "AND", "values": _props(i, c, None, errors)} for i, c in enumerate(form["conditions"])]
        if not any(g["values"] for g in groups):
            errors["form"] = "Add at least one filter."
        body["filters"] = {"properties": {"type": "OR", "values": [g for g in groups if g["values"]]}}
    return body, errors
