"""A reproducible load benchmark for smsdest: `make bench` / `make bench-quick`.

Everything runs on loopback: its own redis-server, a fast fake Twilio, the service as a
user runs it (`smsdest serve` / `smsdest worker`), a bare FastAPI baseline, and wrk.
"""
