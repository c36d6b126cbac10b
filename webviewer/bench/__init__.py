"""The benchmark behind `webviewer-bench`: fresh-process runs, pure arithmetic, and the report tables.

- `stats`: summary, improvement over Batch, network floor, balanced rate, targets (pure functions).
- `report`: terminal and Markdown tables from a result dict (the `--json` object).
- `runner`: the API server process, one `webviewer-load --json` process per run.
"""
