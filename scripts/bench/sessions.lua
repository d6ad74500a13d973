-- wrk script for scripts/bench.sh: many distinct sessions, and one JSON summary line.
--
--   COOKIES_FILE=cookies.txt wrk -t2 -c64 -d10s -s scripts/bench/sessions.lua http://127.0.0.1:PORT/me
--
-- Every request carries the 4-cookie header of the in-process benches:
-- "theme=dark; _ga=GA1.2.3; csrftoken=abc; <session cookie>". With COOKIES_FILE (one
-- "name=value" per line) each request takes the next session of the file, each thread starting
-- at its own offset; without it the fourth cookie is "lang=en" (anonymous traffic).
-- With ALT_PATH set, every other request goes to that path instead of the URL's.
-- done() prints one line "WRK_JSON {...}" (latencies in microseconds).

local NOISE = "theme=dark; _ga=GA1.2.3; csrftoken=abc"
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local cookies = {}
local n = 0
local i = 0
local alt = nil

function init(args)
  local file = os.getenv("COOKIES_FILE")
  if file and file ~= "" then
    for line in io.lines(file) do
      if line ~= "" then
        n = n + 1
        cookies[n] = NOISE .. "; " .. line
      end
    end
    if n == 0 then error("no cookie in " .. file) end
  end
  alt = os.getenv("ALT_PATH")
  if alt == "" then alt = nil end
  -- Spread the threads over the file.
  if n > 0 then i = math.floor((id or 0) * n / 2) % n end
end

local anonymous = { ["Cookie"] = NOISE .. "; lang=en" }
local flip = false

function request()
  local path = nil
  if alt then
    flip = not flip
    if flip then path = alt end
  end
  if n == 0 then
    return wrk.format(nil, path, anonymous)
  end
  i = i + 1
  if i > n then i = 1 end
  return wrk.format(nil, path, { ["Cookie"] = cookies[i] })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
