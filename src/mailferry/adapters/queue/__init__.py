"""The job queue of workers on PostgreSQL: procrastinate (``procrastinate.py``)."""
