-- wrk script: the fake Twilio alone, one Messages.json create per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "To=%2B14155550000&From=%2B15005550006&Body=benchmark"
