"""The prediction service (issue #5): FastAPI on uvicorn, never importing Prefect.

Modules:

- `app`: `create_app(settings)`: the FastAPI app, its endpoints, error handlers and
  OpenAPI document;
- `service`: `PredictionService`, behind every endpoint: life cycle, feedback, rollout
  changes, and the lean `POST /v1/predict` path (hand-written ASGI handler, orjson, no
  pandas);
- `asgi`: the raw ASGI helpers of that path (`Answer`, body reading, sending);
- `entity_lookup`: entity keys to feature rows (the online reader and its batcher);
- `recording`: metrics and prediction-log records of answered requests, shadow scoring;
- `validation`: request parsing and hand validation (a 4xx naming the field);
- `errors`: the error format (`RequestError` and its JSON document);
- `openapi_models`: the documented JSON shapes (OpenAPI only): request bodies written
  for the served model, responses and errors;
- `loader`: model slots (champion, challenger) in an immutable snapshot, registry
  polling, download + digest check, atomic hot swap;
- `smoke`: the warm-up and smoke test a version passes before it serves;
- `batching`: micro-batching of concurrent requests' rows into one forward pass
  (and of entity keys into one online-store read);
- `online_features`: entity mode, features from Feast's online store;
- `routing`: champion/challenger routing by the rollout state (sticky per entity);
- `prediction_log`: every answered and shadow-scored row, and late labels;
- `metrics`: Prometheus metrics per model version and variant;
- `auth`: API key for prediction endpoints, bearer token for admin ones;
- `server`, `cli`: `mlops serve [--host H] [--port P] [--workers N]`.
"""
