"""`edge-cifar serve`: the web face of the camera loop (the `serve` extra: Starlette, uvicorn,
prometheus-client).

The loop runs in the main thread as for `camera`; `ServeSink` hands each annotated frame to a
`LiveFeed`, which keeps only the newest one. The web server (uvicorn, in its own thread) reads the
feed: it never runs a model loop of its own; `POST /classify` runs one upload through its own
interpreter, apart from the loop's.
"""
