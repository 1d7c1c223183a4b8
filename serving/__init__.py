"""The prediction service (issue #5): FastAPI on uvicorn, never importing Prefect.

Modules:

- `app`: `create_app(settings)`: the FastAPI app, its endpoints, error handlers and
  OpenAPI document;
- `service`: `PredictionService`, behind every endpoint: feedback, rollout changes, and
  the lean `POST /v1/predict` and `/v2/.../infer` path (hand-written ASGI handler,
  orjson, no pandas);
- `runtime`: `ServingRuntime`, what the service holds (models, features, log, metrics)
  and its start-up and shutdown;
- `scoring`: a request's rows routed (or pinned) and scored on champion and challenger,
  the champion answering for a failed challenger;
- `oip_routes`, `oip`, `oip_validation`, `oip_tensors`, `oip_models`: the Open Inference
  Protocol (V2 REST) of KServe, MLServer and Triton: its endpoints, its answers and
  metadata, its tensors turned into feature rows (one tensor's structure and values
  checked), its documented shapes (written for the served model, as `/v1`'s);
- `asgi`: the raw ASGI helpers of that path (`Answer`, body reading, sending);
- `entity_lookup`: entity keys to feature rows (the online reader and its batcher);
- `recording`: metrics and prediction-log records of answered requests, shadow scoring;
- `validation`: hand validation of `/v1` requests (a 4xx naming the field), under the
  data contract (nulls) and the 32-bit float range;
- `json_values`: request bodies parsed, and what their numbers are (`NaN`, too large,
  integers in JSON Schema's sense);
- `errors`: the error format (`RequestError` and its JSON document);
- `openapi_models`: the documented JSON shapes of `/v1` (OpenAPI only): request bodies
  written for the served model, responses and errors;
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
