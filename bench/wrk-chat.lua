-- wrk script: one non-streamed chat completion per request.
--   wrk -t1 -c64 -d10s -s bench/wrk-chat.lua http://127.0.0.1:PORT
-- The path is set here; the URL given to wrk only supplies scheme, host and port.
-- No response() hook on purpose: defining one makes wrk hand every reply to Lua,
-- which costs wrk CPU and lowers the ceiling it measures. wrk itself prints
-- "Non-2xx or 3xx responses: N" and "Socket errors: ..." when they happen;
-- the bench scripts check for those lines.
wrk.method = "POST"
wrk.path   = "/v1/chat/completions"
wrk.body   = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}],"max_tokens":5}'
wrk.headers["Content-Type"] = "application/json"
