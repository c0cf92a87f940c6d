"""Deleting data through the private API (Bearer personal API key): events by filter, with a dry run that
counts them first, and whole projects. The work itself runs in the background in batches
(phlite/lifecycle/deletion.py; docs/lifecycle.md "Deleting events", "Deleting a project")."""

from phlite import errors
from phlite.codec import parse_int64
from phlite.lifecycle import clean_filter
from phlite.web.auth import personal_key, project_for_key
from phlite.web.common import iso_ms, json_body, json_response, route


def job_json(job):
    f = job["filter"]
    return {"id": job["id"], "status": job["status"], "expected": job["expected"], "deleted": job["deleted"],
            "error": job["error"], "created_at": iso_ms(job["created_at"]), "finished_at": iso_ms(job["finished_at"]),
            "filter": {"event": f.get("event"), "after": iso_ms(f.get("after")), "before": iso_ms(f.get("before")),
                       "properties": f.get("properties")}}


def register(web, app):
    store, deleter = app.store, app.deleter

    def project_id(project):
        return project_for_key(store, personal_key(store), project)

    def create(project):
        pid = project_id(project)
        body = json_body()
        dry_run = body.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise errors.BadRequest("'dry_run' must be true or false.", attr="dry_run")
        spec = clean_filter(body)
        if dry_run:
            return {"dry_run": True, "count": deleter.preview(pid, spec)}
        return json_response(job_json(deleter.request_delete(pid, spec)), 202)

    def list_jobs(project):
        pid = project_id(project)
        return {"results": [job_json(j) for j in store.list_deletion_jobs(pid, 100)]}

    def get_job(project, job):
        pid = project_id(project)
        try:
            found = store.get_deletion_job(pid, parse_int64(job))
        except ValueError:
            found = None
        if not found:
            raise errors.NotFound("Deletion not found.")
        return job_json(found)

    def delete_project(project):
        pid = project_id(project)
        deleter.delete_project(pid)
        return json_response({"id": pid, "status": "deleting"}, 202)

    route(web, "/api/projects/<project>/event_deletions", ["GET"], list_jobs)
    route(web, "/api/projects/<project>/event_deletions", ["POST"], create)
    route(web, "/api/projects/<project>/event_deletions/<job>", ["GET"], get_job)
    route(web, "/api/projects/<project>", ["DELETE"], delete_project)
