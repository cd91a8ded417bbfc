"""Operating Hookpost: health checks, Prometheus metrics, structured logs with a request id."""
