"""The measurement core: what every load front-end (Locust sessions, the bench's closed loop, chaos's
aiohttp load) shares, so a number means the same thing whichever front-end produced it.

- `percentiles`: the one percentile definition (nearest rank) and the latency summary built on it;
- `outcomes`: per-request outcomes and per-client tallies, and what a table counts from them;
- `server_stats`: Prometheus expositions and Triton's statistics API, parsed once;
- `machine`: where a run was measured; `ports`: free loopback ports; `images`: the sample photos;
- `names`: catalog and Triton model names, resolved one way;
- `results`: the schema of a load-test run and the model pairs it measures interleaved, which the
  report reads (the producer owns what it writes; the consumer imports it).
"""
