"""infra/terraform checked without terraform: every file parses with an HCL parser, and
the references `terraform validate` would resolve are declared (variables, locals,
resources, data sources, module outputs, module arguments). On top: every output and
variable is described, the tfvars of each environment set exactly declared variables
(the same ones in every environment), each environment has a state key of its own,
and the outputs of the root module map one to one onto the production settings of
`mlops.settings.Settings` (the shapes of the generated connection URLs pass the
production validator too).

Layout: one root module (`infra/terraform/*.tf`, calling the single-purpose modules of
`modules/` directly) for every environment; an environment
is one values file (`environments/<env>.tfvars`, given to plan with `-var-file`) and
one partial backend configuration (`environments/<env>.s3.tfbackend`, given to init
with `-backend-config`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions
from pydantic import BaseModel

from mlops.settings import Profile, Settings

TERRAFORM = Path(__file__).resolve().parents[2] / "infra" / "terraform"
MODULES = TERRAFORM / "modules"
ENVIRONMENTS = TERRAFORM / "environments"
ENV_NAMES = ("staging", "production")

# The production profile: environment variable => is its value a secret?
# A plain setting is output `<name in lower case>`; a secret one is output
# `<name in lower case>_secret_arn` (the Secrets Manager secret holding the value).
PRODUCTION_SETTINGS: dict[str, bool] = {
    "MLOPS_PROFILE": False,
    "MLOPS_DATABASE_URL": True,
    "MLOPS_TRACKING_URI": False,
    "MLOPS_OPTUNA_STORAGE": True,
    "MLOPS_FEAST__ONLINE_STORE": False,
    "MLOPS_FEAST__REDIS_CONNECTION": True,
    "MLOPS_FEAST__REGISTRY_URL": True,
    "MLOPS_S3_ENDPOINT_URL": False,
    "MLOPS_S3_BUCKET": False,
    "MLOPS_S3_REGION": False,
    "MLOPS_ADMIN_TOKEN": True,
    "MLOPS_SERVING__API_KEY": True,
    "MLOPS_SERVING__PREDICTION_LOG_URL": True,
    "PREFECT_API_URL": False,
}
SECRET_SUFFIX = "_secret_arn"

META_ARGUMENTS = {"source", "version", "count", "for_each", "depends_on", "providers"}
OPTIONS = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)

REFERENCE = r"(?<![\w.\"-])"
VAR_REF = re.compile(REFERENCE + r"var\.([A-Za-z_][\w-]*)")
LOCAL_REF = re.compile(REFERENCE + r"local\.([A-Za-z_][\w-]*)")
MODULE_REF = re.compile(REFERENCE + r"module\.([A-Za-z_][\w-]*)\.([A-Za-z_][\w-]*)")
DATA_REF = re.compile(REFERENCE + r"data\.([A-Za-z_][\w-]*)\.([A-Za-z_][\w-]*)")
RESOURCE_REF = re.compile(REFERENCE + r"((?:aws|random)_[a-z0-9_]+)\.([A-Za-z_][\w-]*)")
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


@dataclass
class TerraformDir:
    """What one directory (a module or the root module) declares and references."""

    path: Path
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    resources: set[tuple[str, str]] = field(default_factory=set)
    data: set[tuple[str, str]] = field(default_factory=set)
    expressions: list[str] = field(default_factory=list)


def _parse(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return dict(hcl2.load(handle, serialization_options=OPTIONS))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _interpolations(text: str) -> Iterator[str]:
    """The `${...}` expressions of a parsed value (nested ones included in the outer)."""
    start = text.find("${")
    while start != -1:
        depth, index = 0, start + 1
        while index < len(text):
            if text[index] == "{":
                depth += 1
            elif text[index] == "}":
                depth -= 1
                if depth == 0:
                    break
            index += 1
        yield text[start + 2 : index]
        start = text.find("${", index)


def _labelled(blocks: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for block in blocks:
        yield from block.items()


@cache
def load_dir(path: Path) -> TerraformDir:
    config = TerraformDir(path)
    for file in sorted(path.glob("*.tf")):
        parsed = _parse(file)
        config.variables.update(_labelled(parsed.get("variable", [])))
        config.outputs.update(_labelled(parsed.get("output", [])))
        config.modules.update(_labelled(parsed.get("module", [])))
        for block in parsed.get("locals", []):
            config.locals.update(block)
        for kind, target in (("resource", config.resources), ("data", config.data)):
            for type_name, named in _labelled(parsed.get(kind, [])):
                target.update((type_name, name) for name in named)
        # `moved` blocks name old state addresses, not references to resolve.
        for text in _strings({kind: body for kind, body in parsed.items() if kind != "moved"}):
            config.expressions.extend(_interpolations(text))
    return config


def tf_files() -> list[Path]:
    return sorted(TERRAFORM.rglob("*.tf"))


def module_dirs() -> list[Path]:
    return sorted(path for path in MODULES.iterdir() if path.is_dir())


def all_dirs() -> list[Path]:
    return module_dirs() + [TERRAFORM]


def tfvars(env: str) -> Path:
    return ENVIRONMENTS / f"{env}.tfvars"


def backend_config(env: str) -> Path:
    return ENVIRONMENTS / f"{env}.s3.tfbackend"


def _ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(TERRAFORM)) if path != TERRAFORM else "root" for path in paths]


def _setting_output(env_var: str) -> str:
    return env_var.lower() + (SECRET_SUFFIX if PRODUCTION_SETTINGS[env_var] else "")


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("path", tf_files(), ids=_ids(tf_files()))
def test_every_file_parses(path: Path) -> None:
    assert isinstance(_parse(path), dict)


@pytest.mark.parametrize("env", ENV_NAMES)
def test_tfvars_and_backend_config_parse(env: str) -> None:
    assert _parse(tfvars(env))
    assert _parse(backend_config(env))


def test_layout_has_one_job_per_module() -> None:
    expected = {
        "kms",
        "network",
        "storage",
        "database",
        "cache",
        "secrets",
        "iam",
        "ecs_cluster",
        "load_balancer",
        "service",
    }
    assert {path.name for path in module_dirs()} == expected
    for path in all_dirs():
        assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf"} <= {
            file.name for file in path.glob("*.tf")
        }, path
    assert (TERRAFORM / "backend.tf").is_file()
    assert {file.name for file in ENVIRONMENTS.iterdir()} == {
        name for env in ENV_NAMES for name in (tfvars(env).name, backend_config(env).name)
    }
    # Terraform loads these by itself: values there would reach every environment.
    auto_loaded = [*TERRAFORM.glob("terraform.tfvars*"), *TERRAFORM.glob("*.auto.tfvars*")]
    assert auto_loaded == []


# ------------------------------------------------------------ declared references


@pytest.mark.parametrize("path", all_dirs(), ids=_ids(all_dirs()))
def test_every_used_variable_is_declared(path: Path) -> None:
    config = load_dir(path)
    used = {name for text in config.expressions for name in VAR_REF.findall(text)}
    assert used, f"{path} uses no variables at all: is the parser seeing expressions?"
    assert used - config.variables.keys() == set()


@pytest.mark.parametrize("path", all_dirs(), ids=_ids(all_dirs()))
def test_every_declared_variable_is_used(path: Path) -> None:
    config = load_dir(path)
    used = {name for text in config.expressions for name in VAR_REF.findall(text)}
    assert config.variables.keys() - used == set()


@pytest.mark.parametrize("path", all_dirs(), ids=_ids(all_dirs()))
def test_every_used_local_resource_and_data_source_is_declared(path: Path) -> None:
    config = load_dir(path)
    locals_used = {name for text in config.expressions for name in LOCAL_REF.findall(text)}
    assert locals_used - config.locals.keys() == set()
    data_used = {ref for text in config.expressions for ref in DATA_REF.findall(text)}
    assert data_used - config.data == set()
    resources_used = {ref for text in config.expressions for ref in RESOURCE_REF.findall(text)}
    assert resources_used - config.resources == set()


@pytest.mark.parametrize("path", all_dirs(), ids=_ids(all_dirs()))
def test_module_calls_set_every_required_variable_and_only_declared_ones(path: Path) -> None:
    config = load_dir(path)
    for name, call in config.modules.items():
        target = (path / call["source"]).resolve()
        assert target.is_dir(), f"module {name}: no such source {call['source']}"
        declared = load_dir(target).variables
        required = {var for var, spec in declared.items() if "default" not in spec}
        arguments = set(call) - META_ARGUMENTS
        assert required - arguments == set(), f"module {name} misses required variables"
        assert arguments - declared.keys() == set(), f"module {name} sets undeclared variables"


@pytest.mark.parametrize("path", all_dirs(), ids=_ids(all_dirs()))
def test_every_used_module_output_exists(path: Path) -> None:
    config = load_dir(path)
    for text in config.expressions:
        for module, output in MODULE_REF.findall(text):
            assert module in config.modules, f"{path}: unknown module {module}"
            target = (path / config.modules[module]["source"]).resolve()
            assert output in load_dir(target).outputs, f"{path}: module.{module}.{output}"


def test_moved_blocks_follow_every_module_call_out_of_the_old_platform_module() -> None:
    """The module calls lived in modules/platform (module.platform.module.<name>) until
    it was folded into the root module: moved.tf keeps existing states from replacing
    every object."""
    moved = _parse(TERRAFORM / "moved.tf")["moved"]
    pairs = {block["from"]: block["to"] for block in moved}
    assert len(pairs) == len(moved)
    assert pairs == {
        f"${{module.platform.module.{name}}}": f"${{module.{name}}}"
        for name in load_dir(TERRAFORM).modules
    }


# ------------------------------------------------------------------ documentation


@pytest.mark.parametrize("path", all_dirs(), ids=_ids(all_dirs()))
def test_every_output_has_a_description(path: Path) -> None:
    for name, output in load_dir(path).outputs.items():
        assert str(output.get("description", "")).strip(), f"output {name} has no description"


@pytest.mark.parametrize("path", all_dirs(), ids=_ids(all_dirs()))
def test_every_variable_has_a_description_and_a_type(path: Path) -> None:
    for name, variable in load_dir(path).variables.items():
        assert str(variable.get("description", "")).strip(), f"variable {name}: no description"
        assert variable.get("type"), f"variable {name}: no type"


def test_every_checkov_skip_carries_a_reason() -> None:
    skips = 0
    for path in tf_files():
        for line in path.read_text().splitlines():
            match = SKIP_COMMENT.search(line)
            if match:
                skips += 1
                reason = (match.group(2) or "").strip()
                assert len(reason) >= 20, f"{path}: {match.group(1)} skipped without a reason"
    assert skips, "no skips found: is the pattern still right?"


# ------------------------------------------------------------------- environments


@pytest.mark.parametrize("env", ENV_NAMES)
def test_tfvars_set_declared_variables_and_every_required_one(env: str) -> None:
    declared = load_dir(TERRAFORM).variables
    values = _parse(tfvars(env))
    assert values.keys() - declared.keys() == set()
    required = {name for name, spec in declared.items() if "default" not in spec}
    assert required - values.keys() == set()
    assert values["environment"] == env


def test_environments_differ_in_values_only() -> None:
    """One root module, so variables, outputs and module calls are shared by
    construction; the environments' files set the same keys, with their own values."""
    staging, production = (_parse(tfvars(env)) for env in ENV_NAMES)
    assert staging.keys() == production.keys()
    assert staging != production
    staging, production = (_parse(backend_config(env)) for env in ENV_NAMES)
    assert staging.keys() == production.keys()


def test_production_sizes_back_the_skipped_high_availability_checks() -> None:
    """The CKV_AWS_157 and CKV2_AWS_50 skips promise multi-AZ in production."""
    production = _parse(tfvars("production"))
    assert production["db_multi_az"] is True
    assert production["redis_num_cache_clusters"] >= 2
    assert production["single_nat_gateway"] is False
    assert len(production["availability_zones"]) >= 2
    assert production["serving_min_count"] >= 2
    assert production["serving_max_count"] > production["serving_min_count"]
    for env in ENV_NAMES:
        values = _parse(tfvars(env))
        assert values.get("db_deletion_protection", True) is True
        assert values.get("force_destroy_buckets", False) is False


def test_backend_is_encrypted_and_locked() -> None:
    backend = _parse(TERRAFORM / "backend.tf")["terraform"][0]["backend"][0]["s3"]
    assert backend["encrypt"] is True
    assert backend["use_lockfile"] is True
    assert "key" not in backend, "the state key is per environment: environments/*.s3.tfbackend"


@pytest.mark.parametrize("env", ENV_NAMES)
def test_each_environment_has_a_state_key_of_its_own(env: str) -> None:
    config = _parse(backend_config(env))
    assert config["key"] == f"mlops-loop/{env}/terraform.tfstate"
    # Only where the state lies: encryption and locking stay as backend.tf sets them.
    assert config.keys() <= {"key", "bucket", "region", "kms_key_id"}


# --------------------------------------------------------- the production settings


def _settings_field(env_var: str) -> Any:
    """The pydantic field an MLOPS_* variable sets (nested with `__`)."""
    model: type[BaseModel] = Settings
    parts = env_var.removeprefix("MLOPS_").lower().split("__")
    for part in parts[:-1]:
        model = model.model_fields[part].annotation  # type: ignore[assignment]
    return model.model_fields[parts[-1]]


@pytest.mark.parametrize(
    "env_var", [name for name in PRODUCTION_SETTINGS if name.startswith("MLOPS_")]
)
def test_every_listed_setting_exists_in_the_settings_object(env_var: str) -> None:
    assert _settings_field(env_var) is not None


def test_outputs_map_one_to_one_onto_the_production_settings() -> None:
    outputs = load_dir(TERRAFORM).outputs
    setting_outputs = {
        name for name in outputs if name.startswith("mlops_") or name.startswith("prefect_api")
    }
    assert setting_outputs == {_setting_output(env_var) for env_var in PRODUCTION_SETTINGS}
    for env_var, secret in PRODUCTION_SETTINGS.items():
        output = outputs[_setting_output(env_var)]
        source = "secret_settings" if secret else "plain_settings"
        assert output["value"] == f'${{local.{source}["{env_var}"]}}'
        assert output["description"].startswith(f"{env_var}: ")
        assert not output.get("sensitive"), "secrets leave terraform as ARNs, never as values"


def _resolve(locals_: dict[str, Any], value: str) -> str:
    """Follow a value that is a bare `${local.name}` reference to what it names."""
    while (match := re.fullmatch(r"\$\{local\.(\w+)\}", value)) is not None:
        value = locals_[match.group(1)]
    return value


def test_root_module_sets_every_production_setting_once() -> None:
    root = load_dir(TERRAFORM).locals
    plain = {key: _resolve(root, value) for key, value in root["plain_settings"].items()}
    secret = root["secret_settings"]
    assert plain.keys() & secret.keys() == set()
    assert set(plain) == {name for name, is_secret in PRODUCTION_SETTINGS.items() if not is_secret}
    assert set(secret) == {name for name, is_secret in PRODUCTION_SETTINGS.items() if is_secret}
    assert plain["MLOPS_PROFILE"] == "production"
    assert plain["MLOPS_FEAST__ONLINE_STORE"] == "redis"
    assert plain["MLOPS_S3_ENDPOINT_URL"].startswith("https://s3.")
    assert plain["MLOPS_TRACKING_URI"].startswith("http://mlflow.")
    assert plain["PREFECT_API_URL"].endswith("/api")


def test_flow_runs_and_serving_receive_the_settings() -> None:
    root = load_dir(TERRAFORM)
    modules, locals_ = root.modules, root.locals
    assert "local.plain_settings" in modules["flow_run"]["environment"]
    assert "local.serving_settings" in modules["serving"]["environment"]
    assert "local.plain_settings" in locals_["serving_settings"]
    assert modules["serving"]["secrets"] == "${local.serving_secrets}"
    assert modules["flow_run"]["secrets"] == "${local.flow_run_secrets}"


def _example(template: str) -> str:
    """A secret template of modules/secrets with its interpolations filled in."""
    return re.sub(r"\$\{[^}]*\}", "x", template)


def test_generated_connection_urls_pass_the_production_validator() -> None:
    values = load_dir(MODULES / "secrets").locals["values"]
    root = load_dir(TERRAFORM).locals
    plain = {key: _resolve(root, value) for key, value in root["plain_settings"].items()}
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        profile=Profile.PRODUCTION,
        database_url=_example(values["database-url"]),
        tracking_uri=_example(plain["MLOPS_TRACKING_URI"]),
        optuna_storage=_example(values["optuna-storage"]),
        feast={
            "online_store": plain["MLOPS_FEAST__ONLINE_STORE"],
            "redis_connection": _example(values["redis-connection"]),
            "registry_url": _example(values["feast-registry-url"]),
        },
        admin_token="x" * 48,
        serving={"prediction_log_url": _example(values["database-url"])},
    )
    assert settings.database_url and settings.database_url.startswith("postgresql://")
    assert settings.optuna_storage and settings.optuna_storage.startswith("postgresql+psycopg://")
    assert "ssl=true" in settings.feast.redis_connection
    for key in ("database-url", "optuna-storage", "feast-registry-url", "mlflow-backend-store-uri"):
        assert values[key].endswith("?sslmode=require"), key
    assert values["prefect-database-url"].startswith("postgresql+asyncpg://")
    assert values["prefect-database-url"].endswith("?ssl=require")
