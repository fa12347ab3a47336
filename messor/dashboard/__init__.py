"""``messor dashboard``: a live page of a harvest, its JSON and Prometheus metrics.

Optional (``pip install 'messor[dashboard]'``): this package imports Starlette;
nothing in the core imports it. :func:`messor.dashboard.app.create_app` builds
the app for any memory; ``messor dashboard`` serves it with uvicorn.
"""
