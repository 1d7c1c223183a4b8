"""MLflow "models from code" entry point: executed when a registered model is loaded.

MLflow copies this file into every logged model and runs it at load time instead of
unpickling a Python object; it only names the class that serves the artifact.
"""

from mlflow.models import set_model

from mlops.registry.pyfunc import TabularPyfunc

set_model(TabularPyfunc())
