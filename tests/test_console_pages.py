"""Console pages over real HTTP: Persons (search, person page with flags and cohorts, delete), Groups,
the flag form (conditions, variants, payloads, validation beside the field, history, test box) and
cohorts (dynamic with the same editor, static from pasted ids or a CSV upload), with posthog-python
seeing what the forms made."""

import re
import uuid

import posthog as posthog_module
import pytest

from support import ConsoleClient, console_user, ev, send

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror=alert(1)>'


def person_uuid(html):
    return re.search(r'/persons/([0-9a-f-]{36})"', html).group(1)


def flag_fields(key, **extra):
    fields = {"key": key, "name": "", "active": "1", "c0.set": "1", "c0.rollout": "100", "action": "save"}
    fields.update(extra)
    return fields


@pytest.fixture
def admin(server):
    return console_user(server, "admin")


def test_persons_search_page_and_delete(server, project, admin):
    send(project, ev("$identify", "user-7", **{"$anon_distinct_id": "anon-7", "$set": {"email": "seven@shop.example"}}),
         ev("bought", "user-7"), ev("seen", "someone-else"))
    html = admin.text(f"/project/{project.id}/persons?search=seven@shop")
    assert html.count('class="person"') == 1 and "seven@shop.example" in html
    page = admin.text(f"/project/{project.id}/persons/{person_uuid(html)}")
    assert "anon-7" in page and "user-7" in page and page.count('class="ev"') == 2
    assert "This project has no flags." in page
    uid = person_uuid(html)
    r = admin.post(f"/project/{project.id}/persons/{uid}/delete", {"confirm": "no"})
    assert r.status == 200 and b"Type delete in the box to confirm" in r.body
    r = admin.post(f"/project/{project.id}/persons/{uid}/delete", {"confirm": "delete", "delete_events": "1"})
    assert r.status == 303
    project.flush()
    assert admin.get(f"/project/{project.id}/persons/{uid}").status == 404
    assert "bought" not in admin.text(f"/project/{project.id}/activity")
    assert admin.get(f"/project/{project.id}/persons/not-a-uuid").status == 404


def test_groups_pages(server, project, admin):
    send(project, ev("paid", "u1", **{"$groups": {"company": "acme"}}),
         {"event": "$groupidentify", "distinct_id": "u1",
          "properties": {"$group_type": "company", "$group_key": "acme", "$group_set": {"name": "Acme Inc"}}})
    html = admin.text(f"/project/{project.id}/groups")
    assert "company" in html and "Acme Inc" in html
    page = admin.text(f"/project/{project.id}/group?type=0&key=acme")
    assert "Acme Inc" in page and page.count('class="ev"') == 1
    assert admin.get(f"/project/{project.id}/group?type=0&key=nope").status == 404


def test_flag_form_makes_a_flag_posthog_python_evaluates(server, project, admin):
    send(project, ev("$identify", "in-1", **{"$set": {"email": "a@corp.example"}}),
         ev("$identify", "out-1", **{"$set": {"email": "b@else.example"}}))
    r = admin.post(f"/project/{project.id}/feature_flags/new", flag_fields(
        "corp-beta", **{"c0.rollout": "50", "c0.p0.kind": "person", "c0.p0.key": "email",
                        "c0.p0.op": "icontains", "c0.p0.value": "@corp.example", "payload": '{"color": "blue"}'}))
    assert r.status == 303, r.body
    flag = server.store.get_flag_by_key(project.id, "corp-beta")
    assert flag["filters"]["groups"] == [{"properties": [{"key": "email", "type": "person", "operator": "icontains",
                                                           "value": "@corp.example"}], "rollout_percentage": 50}]
    client = posthog_module.Posthog(project.token, host=server.url, personal_api_key=project.key, sync_mode=True)
    try:
        # The 50% rollout: for each distinct id, exactly what the person page and the test box say.
        ids = [f"corp-{i}" for i in range(20)]
        for did in ids:
            client.capture(did, "$identify", properties={"$set": {"email": f"{did}@corp.example"}})
        project.flush()
        seen = {did: client.get_feature_flag("corp-beta", did, person_properties={"email": f"{did}@corp.example"})
                for did in ids}
        assert 0 < sum(bool(v) for v in seen.values()) < 20
        for did in ids[:5]:
            box = admin.text(f"/project/{project.id}/feature_flags/{flag['id']}?test={did}")
            shown = re.search(r'class="test-result">.*?<code class="value (on|off)">', box, re.S).group(1)
            assert (shown == "on") == bool(seen[did]), did
        assert client.get_feature_flag("corp-beta", "out-1", person_properties={"email": "b@else.example"}) is False
    finally:
        client.shutdown()


def test_flag_form_variants_validation_history(server, project, admin):
    base = f"/project/{project.id}/feature_flags"
    # Errors appear beside their field, and nothing is saved.
    r = admin.post(base + "/new", flag_fields("bad key!", **{"c0.rollout": "150", "v0.key": "a", "v0.pct": "60",
                                                             "v1.key": "b", "v1.pct": "30", "v1.payload": "{oops"}))
    assert r.status == 400
    fields = dict(re.findall(r'data-field="([^"]+)">([^<]+)', r.body.decode()))
    assert set(fields) >= {"key", "c0.rollout", "v1.payload"}
    assert server.store.list_flags(project.id)[1] == 0
    r = admin.post(base + "/new", flag_fields("split", **{"v0.key": "a", "v0.pct": "60", "v1.key": "b", "v1.pct": "30"}))
    assert r.status == 400 and b"add up to 100" in r.body
    # A duplicate key comes back from the API's own check, beside the key field.
    assert admin.post(base + "/new", flag_fields("dup")).status == 303
    r = admin.post(base + "/new", flag_fields("dup"))
    assert r.status == 400 and b'data-field="key"' in r.body
    # Variants with payloads; then edit and see what changed in the history.
    r = admin.post(base + "/new", flag_fields("split", **{"v0.key": "control", "v0.pct": "50", "v1.key": "test",
                                                          "v1.pct": "50", "v1.payload": '"shiny"'}))
    assert r.status == 303
    fid = int(r.headers["Location"].split("/")[-1].split("?")[0])
    row = server.store.get_flag(project.id, fid)
    assert row["filters"]["multivariate"]["variants"] == [{"key": "control", "rollout_percentage": 50},
                                                          {"key": "test", "rollout_percentage": 50}]
    assert row["filters"]["payloads"] == {"test": '"shiny"'}
    page = admin.text(base + f"/{fid}")
    assert 'value="control"' in page and "&#34;shiny&#34;" in page
    r = admin.post(base + f"/{fid}", flag_fields("split", version=str(row["version"]), **{
        "v0.key": "control", "v0.pct": "20", "v1.key": "test", "v1.pct": "80", "v1.payload": '"shiny"'}))
    assert r.status == 303
    page = admin.text(base + f"/{fid}")
    history = page[page.index("<h2>History</h2>"):]
    assert "updated" in history and "filters" in history and "80" in history and "created" in history
    assert "admin-" in history  # the console user who made the change
    # A stale form (someone saved meanwhile) is refused, not silently overwritten.
    r = admin.post(base + f"/{fid}", flag_fields("split", version=str(row["version"]), **{
        "v0.key": "control", "v0.pct": "50", "v1.key": "test", "v1.pct": "50"}))
    assert r.status == 409
    # Adding a row re-shows the form without saving.
    r = admin.post(base + f"/{fid}", {**flag_fields("split"), "action": "add_condition"})
    assert r.status == 200 and r.body.count(b'name="c1.set"') == 1


def test_cohorts_dynamic_static_and_in_a_flag(server, project, admin):
    send(project, ev("$identify", "pro-1", **{"$set": {"plan": "pro"}}), ev("$identify", "free-1", **{"$set": {"plan": "free"}}))
    base = f"/project/{project.id}/cohorts"
    r = admin.post(base + "/new", {"name": "Pro users", "is_static": "0", "c0.set": "1", "c0.p0.kind": "person",
                                   "c0.p0.key": "plan", "c0.p0.op": "exact", "c0.p0.value": "pro", "action": "save"})
    assert r.status == 303, r.body
    dynamic = int(r.headers["Location"].split("/")[-1].split("?")[0])
    page = admin.text(f"{base}/{dynamic}")
    assert "pro-1" in page and "free-1" not in page
    boundary = "----phlite" + uuid.uuid4().hex
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in {"csrf": admin.csrf, "name": "Uploaded", "is_static": "1", "ids": "pasted-1", "action": "save"}.items()
    ) + (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="ids.csv"\r\n'
         f"Content-Type: text/csv\r\n\r\ndistinct_id,plan\r\nfree-1,free\r\ncsv-2,x\r\n--{boundary}--\r\n")
    r = admin.request("POST", base + "/new", None, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                      raw=body.encode())
    assert r.status == 303, r.body
    static = int(r.headers["Location"].split("/")[-1].split("?")[0])
    assert server.store.static_members(static) == ["csv-2", "free-1", "pasted-1"]
    # The cohorts in a flag, through the same form; posthog-python agrees with the person page.
    r = admin.post(f"/project/{project.id}/feature_flags/new", flag_fields(
        "pro-or-listed", **{"c0.p0.kind": "cohort", "c0.p0.key": "id", "c0.p0.op": "in", "c0.p0.value": str(dynamic),
                            "c1.set": "1", "c1.rollout": "100", "c1.p0.kind": "cohort", "c1.p0.key": "id",
                            "c1.p0.op": "in", "c1.p0.value": str(static)}))
    assert r.status == 303, r.body
    html = admin.text(f"/project/{project.id}/persons?search=free-1")
    page = admin.text(f"/project/{project.id}/persons/{person_uuid(html)}")
    assert "Uploaded" in page and "Pro users" not in page.split("<h2>Cohorts</h2>")[1].split("<h2>")[0]
    client = posthog_module.Posthog(project.token, host=server.url, sync_mode=True)
    try:
        assert client.get_feature_flag("pro-or-listed", "pro-1") is True
        assert client.get_feature_flag("pro-or-listed", "free-1") is True  # listed in the static cohort
        assert client.get_feature_flag("pro-or-listed", "nobody") is False
    finally:
        client.shutdown()


def test_hostile_data_on_persons_groups_flags_and_cohorts(server, project, admin):
    send(project, {"event": "$identify", "distinct_id": HOSTILE,
                   "properties": {"$set": {HOSTILE: HOSTILE, "email": HOSTILE}, "$groups": {HOSTILE: HOSTILE}}},
         {"event": "$groupidentify", "distinct_id": HOSTILE,
          "properties": {"$group_type": HOSTILE, "$group_key": HOSTILE, "$group_set": {"name": HOSTILE}}})
    r = admin.post(f"/project/{project.id}/cohorts/new", {"name": HOSTILE, "is_static": "1", "ids": HOSTILE,
                                                          "action": "save"})
    assert r.status == 303
    r = admin.post(f"/project/{project.id}/feature_flags/new", flag_fields(
        "hostile", name=HOSTILE, payload='"' + HOSTILE.replace('"', '\\"') + '"',
        **{"c0.p0.kind": "person", "c0.p0.key": HOSTILE, "c0.p0.op": "exact", "c0.p0.value": HOSTILE}))
    assert r.status == 303, r.body
    fid = r.headers["Location"].split("/")[-1].split("?")[0]
    persons = admin.text(f"/project/{project.id}/persons")
    pages = [f"/project/{project.id}/persons", f"/project/{project.id}/persons/{person_uuid(persons)}",
             f"/project/{project.id}/groups", f"/project/{project.id}/group?type=0&key=%3Cscript%3Ewindow.__pwned%3D1%3C%2Fscript%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
             f"/project/{project.id}/feature_flags", f"/project/{project.id}/feature_flags/{fid}",
             f"/project/{project.id}/feature_flags/{fid}?test=" + "%3Cscript%3E", f"/project/{project.id}/cohorts",
             f"/project/{project.id}/cohorts/new"]
    for path in pages:
        html = admin.text(path)
        assert "<script>window" not in html and "<img src=x" not in html, path
    assert "&lt;script&gt;" in admin.text(pages[1])


def test_members_see_pages_but_not_admin_ones(server, project):
    member = console_user(server, "member")
    assert member.get(f"/project/{project.id}/feature_flags").status == 200
    assert member.get(f"/project/{project.id}/persons").status == 200
    assert ConsoleClient(server.url).get(f"/project/{project.id}/persons").status == 303
