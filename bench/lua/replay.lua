-- Replays a list of prepared requests round robin (each thread from its own offset).
-- Usage: wrk ... -s replay.lua URL -- REQUESTS_FILE
-- REQUESTS_FILE: records of "METHOD PATH CONTENT_TYPE CONTENT_ENCODING LENGTH\n" + LENGTH body bytes
-- ("-" = no header). Requests are formatted once in init, so request() costs nothing.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")


local reqs = {}
local i = 0

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while pos <= #data do
    local nl = data:find("\n", pos, true)
    local method, path, ctype, cenc, len = data:sub(pos, nl - 1):match("^(%S+) (%S+) (%S+) (%S+) (%d+)$")
    len = tonumber(len)
    local body = data:sub(nl + 1, nl + len)
    local headers = {}
    if ctype ~= "-" then headers["Content-Type"] = ctype end
    if cenc ~= "-" then headers["Content-Encoding"] = cenc end
    table.insert(reqs, wrk.format(method, path, headers, body))
    pos = nl + len + 1
  end
  i = ((thread_id or 1) * 7919) % #reqs
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end

