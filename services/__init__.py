"""deploylab: measure which CNN, exported and served how, meets a latency/throughput target."""

__version__ = "0.1.0"
