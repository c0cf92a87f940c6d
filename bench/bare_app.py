"""The HTTP baseline: a bare bottle app on waitress doing the least an endpoint must do.

`/e/` and `/capture`: read the body, gunzip it when asked, parse the JSON, answer {"status": 1}.
`/flags`: read and parse the body, answer a fixed response (the bytes phlite answered for the
same request, passed in a file), so the baseline pays for the same response size.

    python bench/bare_app.py PORT THREADS [FLAGS_RESPONSE_FILE]
"""

import sys
import zlib

import bottle
import orjson
import waitress

app = bottle.Bottle()
FLAGS_RESPONSE = b'{"flags": {}}'
OK = orjson.dumps({"status": 1})


def _body():
    env = bottle.request.environ
    return env["wsgi.input"].read(int(env.get("CONTENT_LENGTH") or 0))


@app.route("/e/", "POST")
@app.route("/capture", "POST")
def capture():
    body = _body()
    if "gzip" in bottle.request.query_string or bottle.request.headers.get("Content-Encoding") == "gzip":
        body = zlib.decompress(body, 31)
    orjson.loads(body)
    bottle.response.content_type = "application/json"
    return OK


@app.route("/flags/", "POST")
@app.route("/flags", "POST")
def flags():
    orjson.loads(_body())
    bottle.response.content_type = "application/json"
    return FLAGS_RESPONSE


@app.route("/ping")
def ping():
    return "ok"


if __name__ == "__main__":
    port, threads = int(sys.argv[1]), int(sys.argv[2])
    if len(sys.argv) > 3:
        with open(sys.argv[3], "rb") as f:
            FLAGS_RESPONSE = f.read()
    print(f"bare app listening on http://127.0.0.1:{port}", flush=True)
    waitress.serve(app, host="127.0.0.1", port=port, threads=threads, connection_limit=200, _quiet=True)
