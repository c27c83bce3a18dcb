"""The packaged rule base: ``rules/R*.json`` (rules as data with their golden cases) and
``kb/*.json`` (the knowledge base). Shipped inside the wheel and found through
``importlib.resources`` (services.rules.engine.packaged_data); ``PRESETTLE_RULEBASE_DIR``
points the service at another directory of the same layout."""
