"""One construct per capability (storage, queues, api, worker, scheduler, workflows, monitoring)."""
