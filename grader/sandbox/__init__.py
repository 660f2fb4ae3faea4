"""Running student code out of process: wire format, worker, trusted-side proxy, limits."""
