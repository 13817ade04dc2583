-- Each request with the next DPoP proof of the file $PROOFS (one per line, each used once),
-- and, for a route, the bound token in $TOKEN; the token endpoint otherwise ($BASIC). Prints
-- the answers outside 2xx, and whether the proofs ran out (replays would then be refused). Run
-- with one wrk thread: each thread would read the same proofs.
local threads = {}
local proofs = {}
local token, basic = os.getenv("TOKEN"), os.getenv("BASIC")

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  used, non2xx = 0, 0
  for line in io.lines(os.getenv("PROOFS")) do
    proofs[#proofs + 1] = line
  end
  total = #proofs
end

function request()
  used = used + 1
  local proof = proofs[used] or proofs[1]
  if token then
    return wrk.format("GET", nil, { ["Authorization"] = "DPoP " .. token, ["DPoP"] = proof })
  end
  return wrk.format("POST", nil, {
    ["Authorization"] = "Basic " .. basic,
    ["DPoP"] = proof,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "grant_type=client_credentials")
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    local used, total = t:get("used"), t:get("total")
    io.write(string.format("non2xx %d\n", t:get("non2xx")))
    if used > total then
      io.write(string.format("RAN OUT OF PROOFS: %d requests, %d proofs\n", used, total))
    end
  end
end
