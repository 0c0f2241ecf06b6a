-- wrk script for row 1 of scripts/bench: the GetJob request voiceclone
-- sends (the body comes from BENCH_BODY, made by lib.lua).
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
