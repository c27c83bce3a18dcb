"""事后: the decision log — every decision, feedback, status change and rule-base revision in a database.

``store``      the database: SQLite (embedded default, WAL, a file under the data directory) or
               PostgreSQL (``PRESETTLE_DATABASE_URL=postgresql://…``); versioned migrations,
               append-only tables (triggers), queries for the look-up API, cases and reports
``records``    pure: audit / feedback / status / rule-base records → rows (patient ids pseudonymised)
``workflow``   pure: the review workflow's states, actions and who may take them
``sink``       the consumer process (``presettle sink``): topics → store, lag as a metric
``metrics``    the sink's Prometheus metrics
"""
