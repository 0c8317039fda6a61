"""The harness shared by the tests and the benchmarks in bench/: the database URL a worker
process must use, emptying the broker, a real Celery worker, a simulator credential."""
