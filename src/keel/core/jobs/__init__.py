"""The durable job queue: the `jobs` table is the truth, taskiq only carries job ids.

- `models`     the Job row (status, progress, attempts, lease, result)
- `handlers`   what a job kind is: an async function of a `JobContext`, and its errors
- `repository` every state change as one conditional UPDATE, so two processes never both
               win a job, and a worker that lost its lease cannot overwrite the outcome
- `runner`     runs one job id: claim, heartbeat, retry with backoff, cancel, finish
- `queue`      the broker (in-process, or Redis Streams), enqueueing, the consumer loop,
               and the sweeper that re-sends due retries and jobs whose worker died
"""
