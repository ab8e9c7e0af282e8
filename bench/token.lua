-- wrk script: POSTs token requests for random subjects and checks every answer.
--
--   wrk -t1 -c32 -d10s --latency -s bench/token.lua URL -- \
--       client=ID secret=S scope=SC subject=username|userid|email n=1000 [expect=200] \
--       [sample=FILE sample_every=5000] [seed=1]
--
-- subject: which form parameter names the subject (user i is "user.<i>" /
-- "<10000000+i>", customer i is "customer.<i>@example.com", as
-- gen_provisioning.py writes them); i is drawn uniformly from 0..n-1.
--
-- With STEAD_BENCH_CHECK=0 in the environment the response() callback is not
-- defined: wrk then skips handing each body to Lua (cheaper for wrk) and only
-- its own count of status >= 400 remains.
--
-- done() prints one line that bench/harness.py parses:
--   STEAD_RESULT requests=.. duration_us=.. p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=..
--                checked=.. bad_status=.. bad_body=.. status_ge400=.. connect=.. read=.. write=.. timeout=..

local check = os.getenv("STEAD_BENCH_CHECK") ~= "0"

-- Per-thread state; globals so that done() can read them through thread:get().
checked = 0
bad_status = 0
bad_body = 0

local n, kind, prefix, expect, sample_file, sample_every

local function options(args)
  local o = {}
  for _, a in ipairs(args) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    if k then o[k] = v end
  end
  return o
end

function init(args)
  local o = options(args)
  n = tonumber(o.n or "1000")
  kind = o.subject or "username"
  expect = tonumber(o.expect or "200")
  sample_file = o.sample
  sample_every = tonumber(o.sample_every or "5000")
  prefix = "grant_type=password&client_id=" .. (o.client or "") .. "&client_secret=" .. (o.secret or "")
    .. "&scope=" .. (o.scope or "")
  math.randomseed(tonumber(o.seed or "1"))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  local i = math.random(0, n - 1)
  local subject
  if kind == "userid" then
    subject = "&subject_userid=" .. (10000000 + i)
  elseif kind == "email" then
    subject = "&subject_email=customer." .. i .. "%40example.com"
  elseif kind == "both" then
    subject = "&subject_username=user." .. i .. "&subject_userid=" .. (10000000 + i)
  else
    subject = "&subject_username=user." .. i
  end
  return wrk.format(nil, nil, nil, prefix .. subject)
end

if check then
  function response(status, headers, body)
    checked = checked + 1
    if status ~= expect then
      bad_status = bad_status + 1
    end
    if expect == 200 then
      local token = body:match('"access_token":"(ey[%w_%-]+%.[%w_%-]+%.[%w_%-]+)"')
      if not token then
        bad_body = bad_body + 1
      elseif sample_file and checked % sample_every == 1 then
        local f = io.open(sample_file, "a")
        if f then
          f:write(token, "\n")
          f:close()
        end
      end
    end
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local c, s, b = 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + (t:get("checked") or 0)
    s = s + (t:get("bad_status") or 0)
    b = b + (t:get("bad_body") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    "STEAD_RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d "
      .. "checked=%d bad_status=%d bad_body=%d status_ge400=%d connect=%d read=%d write=%d timeout=%d check=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, c, s, b, e.status, e.connect, e.read, e.write, e.timeout,
    check and 1 or 0))
end
