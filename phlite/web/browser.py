"""What posthog-js fetches besides capture and flags: the remote config (/array/<token>/config.js
and /array/<token>/config), the empty survey, web experiment and product tour lists, and /static/*.

Every route here is public (CORS mirroring Origin, with credentials): posthog-js loads config.js
as a CORS script, so without the headers the browser discards the remote config.
"""

import json
from pathlib import Path

import bottle

from phlite import errors
from phlite.web.common import JSON, dumps, route

JAVASCRIPT = "application/javascript"

def config_script(token, config):
    """config.js: the same config, stored where posthog-js's remote-config loader looks for it."""
    # json.dumps escapes nothing HTML-significant; "</" is harmless in an external script, but
    # escape it anyway so the text is also safe if someone inlines it in a page.
    key = json.dumps(token).replace("</", "<\\/")
    body = dumps({"config": config, "siteApps": []}).decode().replace("</", "<\\/")
    return (
        "(function(){window._POSTHOG_REMOTE_CONFIG=window._POSTHOG_REMOTE_CONFIG||{};"
        f"window._POSTHOG_REMOTE_CONFIG[{key}]={body};}})();\n"
    )


def static_path(root, path):
    """The file under `root` that `path` names, or None: no traversal out of root, no dotfiles."""
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in (".", "..") or p.startswith(".") or "\\" in p or "\0" in p for p in parts):
        return None
    base = Path(root).resolve()
    target = base.joinpath(*parts).resolve()
    if base not in target.parents or not target.is_file():
        return None
    return target


def register(web, app):
    store, config = app.store, app.config

    def project_config(token):
        project_id = store.project_for_token(token)
        if project_id is None:
            raise errors.NotFound("No project has this token.", code="not_found", attr="token")
        return app.flags.project_config(project_id, token)

    def config_json(token):
        return bottle.HTTPResponse(dumps(project_config(token)), 200,
                                   {"Content-Type": JSON, "Cache-Control": "no-cache"})

    def config_js(token):
        script = config_script(token, project_config(token))
        return bottle.HTTPResponse(script, 200, {"Content-Type": JAVASCRIPT, "Cache-Control": "no-cache"})

    def static(path):
        if config.static_dir is None:
            raise errors.NotFound("phlite serves no static assets (set static_dir to serve some).")
        target = static_path(config.static_dir, path)
        if target is None:
            raise errors.NotFound("No such static asset.")
        return bottle.static_file(target.name, root=str(target.parent))

    route(web, "/array/<token>/config.js", ["GET"], config_js, public=True, slash=False)
    route(web, "/array/<token>/config", ["GET"], config_json, public=True)
    route(web, "/api/surveys", ["GET"], lambda: {"surveys": []}, public=True)
    route(web, "/api/web_experiments", ["GET"], lambda: {"experiments": []}, public=True)
    route(web, "/api/product_tours", ["GET"], lambda: {"product_tours": []}, public=True)
    route(web, "/static/<path:path>", ["GET"], static, public=True, slash=False)
