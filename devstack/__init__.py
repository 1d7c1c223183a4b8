"""The local stack supervisor: the Prefect server, deployments, workers and the prediction
service behind `make up` / `make down` (`localstack`), and the notification block and
automations it creates on the server (`notifications_setup`).

Tooling above `flows/`: it may import Prefect; the core (`mlops/`) never imports it.
"""
