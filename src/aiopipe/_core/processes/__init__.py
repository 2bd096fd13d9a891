"""Worker processes for ``map(executor="process")``: pool, worker loop, shared memory."""
