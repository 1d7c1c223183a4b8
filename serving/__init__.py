"""The prediction service (FastAPI): routing, online features, prediction log.

Not built yet: this package is the home of issue #5. It never imports Prefect.
"""
