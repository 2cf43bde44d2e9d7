"""Operating the gateway: metrics (through Ray's exporter), provider health, traces and logs."""
