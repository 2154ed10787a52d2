"""``xuxie serve``: an OpenAI-compatible HTTP server with continuous batching and a playground.

``xuxie.server.app.create_app(generators, limits, api_key)`` builds the FastAPI app; the package
itself imports nothing heavy, so the CLI can read :class:`~xuxie.server.limits.ServerLimits`.
"""
