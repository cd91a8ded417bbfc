"""``hookpost bench``: Hookpost measured against the physical limit and a naive service, in one run.

One module per concern: ``apps`` (the limit and naive servers), ``receiver`` (the subscriber
endpoint), ``loadgen`` (wrk, or the pure-Python generator), ``stack`` (processes, databases,
/proc figures), ``scenarios`` (what is measured), ``report`` (JSON, Markdown, chart) and
``command`` (the Typer command).
"""
