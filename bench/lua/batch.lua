-- posthog-python style /batch requests whose events all get a new uuid.
-- Usage: wrk ... -s batch.lua URL -- TEMPLATE_FILE RUN_NONCE
-- TEMPLATE_FILE is a JSON body in which every "@@UUID@@" is replaced by a new uuid and every
-- "@@DID@@" by one of 10,000 distinct ids, per request.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")


local template, prefix
local n = 0

function init(args)
  local f = assert(io.open(args[1], "rb"))
  template = f:read("*a")
  f:close()
  -- 8 hex digits naming this run and thread, so uuids never repeat across threads or runs.
  math.randomseed((thread_id or 1) * 1000003 + tonumber(args[2]))
  prefix = string.format("%04x%04x", tonumber(args[2]) % 65536, thread_id or 1)
end

local function next_uuid()
  n = n + 1
  return string.format("%s-0000-4000-8000-%012d", prefix, n)
end

local function fill(name)
  if name == "UUID" then return next_uuid() end
  return "user-" .. math.random(1, 10000)
end

function request()
  local body = template:gsub("@@(%u+)@@", fill)
  return wrk.format("POST", "/batch/", {["Content-Type"] = "application/json"}, body)
end

