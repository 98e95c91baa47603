-- REST/JSON requests at the edge: strict bodies and CORS refusals (issue 12).
--
-- Envoy's gRPC-JSON transcoder drops a JSON field that the request message does not define (it
-- has no option to refuse one), so a misspelled "stop_los" would place an order without a
-- stop-loss. This file runs as two Lua filters around the transcoder (envoy/edge.yaml.tmpl):
--
--   intake (ROLE "intake", before the transcoder, which still sees the JSON body and REST path)
--     - refuses a request whose path is longer than MAX_PATH_BYTES (414) or whose path and
--       headers together are larger than MAX_HEADERS_BYTES (431), for every protocol: the
--       codec's own limit only resets an HTTP/2 stream, and what passes here fits the
--       services' gRPC metadata limit with what Envoy adds; the local replies give both
--       answers their google.rpc.Status form;
--     - refuses every OPTIONS request that reached it with 403: the CORS filter before it has
--       answered each preflight from an allowed origin, so what is left is a preflight from an
--       origin not on the list (or no preflight at all), which must cost no upstream call and
--       no rate-limit token;
--     - marks a request that is not gRPC (dynamic metadata tradingmesh.rest.json = true), so
--       the edge's local replies answer it in JSON even after the transcoder has made it gRPC;
--     - keeps the body of a POST, PUT or PATCH (tradingmesh.rest.body).
--   check (ROLE "check", after the transcoder, jwt_authn and the rate limits)
--     - knows the gRPC method the transcoder chose (:path) and walks the kept body against
--       that method's request message: an unknown field, at any depth, is a 400 in the
--       google.rpc.Status shape (VALIDATION_FAILED, BadRequest naming the field).
--
-- stack/components/edge_bodies.py renders this file with a prelude that defines ROLE, the
-- METHODS and MESSAGES tables (from the descriptor set) and the JSON parts of the refusals.
-- Everything the transcoder checks itself (JSON syntax, types, enum names) is left to it: a
-- body this walker cannot parse is passed on unchanged, and the transcoder answers.

local byte, sub, find, char, floor = string.byte, string.sub, string.find, string.char, math.floor
local concat = table.concat

local NAMESPACE = "tradingmesh.rest"
-- Deeper nesting than any request message has; bounds the recursion on hostile bodies.
local MAX_DEPTH = 32
-- Enough of an unknown name to recognise it; a megabyte-long key is not echoed back.
local MAX_ECHO = 128
-- Unknown fields named in one answer: a body of a million made-up keys gets a short one.
local MAX_REPORTED = 20

-- ---- JSON text out -------------------------------------------------------------------------

-- A JSON string literal of `text`, printable ASCII only (anything else becomes "?", so the
-- answer is valid UTF-8 whatever a client sent).
local function quote(text)
  if #text > MAX_ECHO then text = sub(text, 1, MAX_ECHO) .. "..." end
  local out = text:gsub('[%c"\\\128-\255]', function(c)
    if c == '"' or c == "\\" then return "\\" .. c end
    return "?"
  end)
  return '"' .. out .. '"'
end

-- ---- JSON text in --------------------------------------------------------------------------

-- Thrown (as a table) to unwind the walk.
local SYNTAX = {}
local TOO_DEEP = {}
local ENOUGH = {}

local ESCAPES = {
  [34] = '"', [92] = "\\", [47] = "/", [98] = "\b", [102] = "\f", [110] = "\n", [114] = "\r",
  [116] = "\t",
}

local function utf8(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40) end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return char(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
    0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local function skip_space(s, i)
  return find(s, "[^ \t\r\n]", i) or #s + 1
end

-- The string that starts at s[i] (a quote), decoded (a key written "\u0073ide" is "side"), and
-- the index after it.
local function read_string(s, i)
  local parts, j = {}, i + 1
  while true do
    local k = find(s, '["\\]', j)
    if not k then error(SYNTAX) end
    parts[#parts + 1] = sub(s, j, k - 1)
    if byte(s, k) == 34 then return concat(parts), k + 1 end
    local escape = byte(s, k + 1)
    if escape == 117 then -- \uXXXX, and a surrogate pair as one code point
      local cp = tonumber(sub(s, k + 2, k + 5):match("^%x%x%x%x$") or "", 16)
      if not cp then error(SYNTAX) end
      j = k + 6
      if cp >= 0xD800 and cp < 0xDC00 and sub(s, j, j + 1) == "\\u" then
        local low = tonumber(sub(s, j + 2, j + 5):match("^%x%x%x%x$") or "", 16)
        if low and low >= 0xDC00 and low < 0xE000 then
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (low - 0xDC00)
          j = j + 6
        end
      end
      parts[#parts + 1] = utf8(cp)
    else
      local decoded = ESCAPES[escape]
      if not decoded then error(SYNTAX) end
      parts[#parts + 1] = decoded
      j = k + 2
    end
  end
end

-- ---- the walk ------------------------------------------------------------------------------
--
-- What a value must be (METHODS and MESSAGES hold these, see edge_bodies.py):
--   false            anything: a scalar, an enum, a well-known type; the transcoder checks it
--   "pkg.Message"    an object with only that message's fields (or an array of them, or null)
--   {map = spec}     an object with any keys, each value a `spec`

local walk_value

local function walk_object(s, i, spec, path, depth, found)
  local fields = type(spec) == "string" and MESSAGES[spec] or nil
  local values = type(spec) == "table" and spec.map or false
  i = skip_space(s, i + 1)
  if byte(s, i) == 125 then return i + 1 end
  while true do
    if byte(s, i) ~= 34 then error(SYNTAX) end
    local key
    key, i = read_string(s, i)
    i = skip_space(s, i)
    if byte(s, i) ~= 58 then error(SYNTAX) end
    local field_path = path == "" and key or path .. "." .. key
    local field_spec = values
    if fields then
      field_spec = fields[key]
      if field_spec == nil then
        found[#found + 1] = {field_path, spec}
        if #found == MAX_REPORTED then error(ENOUGH) end
        field_spec = false
      end
    end
    i = walk_value(s, skip_space(s, i + 1), field_spec, field_path, depth + 1, found)
    i = skip_space(s, i)
    local c = byte(s, i)
    if c == 125 then return i + 1 end
    if c ~= 44 then error(SYNTAX) end
    i = skip_space(s, i + 1)
  end
end

local function walk_array(s, i, spec, path, depth, found)
  i = skip_space(s, i + 1)
  if byte(s, i) == 93 then return i + 1 end
  local index = 0
  while true do
    i = walk_value(s, i, spec, path .. "[" .. index .. "]", depth + 1, found)
    i = skip_space(s, i)
    local c = byte(s, i)
    if c == 93 then return i + 1 end
    if c ~= 44 then error(SYNTAX) end
    i = skip_space(s, i + 1)
    index = index + 1
  end
end

walk_value = function(s, i, spec, path, depth, found)
  if depth > MAX_DEPTH then error(TOO_DEEP) end
  local c = byte(s, i)
  if c == 123 then return walk_object(s, i, spec, path, depth, found) end
  if c == 91 then return walk_array(s, i, spec, path, depth, found) end
  if c == 34 then
    local _, after = read_string(s, i)
    return after
  end
  -- A number, true, false or null: its end; the transcoder judges the value.
  local _, last = find(s, "^[%w%.%+%-]+", i)
  if not last then error(SYNTAX) end
  return last + 1
end

-- The unknown fields of `body` as {path, message} pairs, or nil and a reason not to judge it.
local function unknown_fields(body, spec)
  local found = {}
  local ok, err = pcall(function()
    local i = skip_space(body, 1)
    if i > #body then return end -- an empty body: the transcoder treats it as {}
    i = skip_space(body, walk_value(body, i, spec, "", 0, found))
    if i <= #body then error(SYNTAX) end
  end)
  if ok or err == ENOUGH then return found end
  if err == TOO_DEEP then return nil, "deep" end
  if err == SYNTAX then return nil, "syntax" end
  error(err, 0)
end

-- ---- answers -------------------------------------------------------------------------------

-- `template` (JSON made by edge_bodies.py) with each @NAME@ replaced by values[NAME], in one
-- pass: text a client sent is never scanned for further placeholders.
local function fill(template, values)
  return (template:gsub("@(%u+)@", values))
end

local function respond_json(request, status, body)
  request:respond({[":status"] = status, ["content-type"] = "application/json"}, body)
end

local function refuse_unknown(request, found)
  local violations, names = {}, {}
  for n, item in ipairs(found) do
    violations[n] = fill(UNKNOWN_FIELD_VIOLATION, {FIELD = quote(item[1])})
    names[n] = "\"" .. item[1] .. "\" in " .. item[2]
  end
  respond_json(request, "400", fill(UNKNOWN_FIELD_STATUS, {
    MESSAGE = quote("unknown field" .. (#found > 1 and "s " or " ") .. concat(names, ", ")),
    FIELD = quote(found[1][1]),
    VIOLATIONS = concat(violations, ","),
  }))
end

local function too_large(request, headers)
  if #(headers:get(":path") or "") > MAX_PATH_BYTES then
    request:respond({[":status"] = "414"}, "path too long")
    return true
  end
  local size = 0
  for key, value in pairs(headers) do
    size = size + #key + #value
  end
  if size > MAX_HEADERS_BYTES then
    request:respond({[":status"] = "431"}, "headers too large")
    return true
  end
  return false
end

local function intake(request)
  local headers = request:headers()
  if too_large(request, headers) then return end
  local method = headers:get(":method")
  if method == "OPTIONS" then
    respond_json(request, "403", fill(ORIGIN_REFUSED, {ORIGIN = quote(headers:get("origin") or "")}))
    return
  end
  local content_type = headers:get("content-type") or ""
  if find(content_type, "^application/grpc") then return end
  request:streamInfo():dynamicMetadata():set(NAMESPACE, "json", true)
  if method ~= "POST" and method ~= "PUT" and method ~= "PATCH" then return end
  -- body() waits for the whole body (the buffer filter has it already); objects taken before
  -- the wait cannot be used after it, so the metadata is looked up again.
  local body = request:body()
  if body ~= nil and body:length() > 0 then
    request:streamInfo():dynamicMetadata():set(NAMESPACE, "body", body:getBytes(0, body:length()))
  end
end

local function check(request)
  local kept = request:streamInfo():dynamicMetadata():get(NAMESPACE)
  local body = kept and kept["body"]
  if body == nil then return end
  local spec = METHODS[request:headers():get(":path")]
  if not spec then return end -- no JSON body (none, or google.api.HttpBody)
  local found, why = unknown_fields(body, spec)
  if why == "deep" then
    respond_json(request, "400", TOO_DEEP_STATUS)
  elseif found and #found > 0 then
    refuse_unknown(request, found)
  end
end

if ROLE == "intake" then
  envoy_on_request = intake
else
  envoy_on_request = check
end
