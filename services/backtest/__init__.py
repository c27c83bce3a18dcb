"""Backtests: replay recorded events through two rule-base bundles and report what changes (issue 12).

``replay``  the comparison itself (pure apart from loading the two bundles): per-rule counts,
            gained / lost alerts, affected patients and institutions, amounts, examples
``events``  where the events come from: a JSON Lines file (optionally gzip) or the events topic
``html``    the HTML report (inline SVG, no scripts)
``cli``     ``presettle backtest``
"""
