"""The Helm chart: our template renderer, the checked-in renders, Kubernetes and KEDA schemas, and
that every command, setting and port the manifests name exists in OpenFnF."""
from __future__ import annotations

import base64
import copy
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import jsonschema
import kubernetes_validate
import pytest
import yaml

from common.settings import Settings
from openfnf.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "openfnf"
EXAMPLES = ROOT / "deploy" / "helm" / "examples"
KEDA_SCHEMA = ROOT / "deploy" / "helm" / "schemas" / "keda.sh-v1alpha1.json"
K8S_VERSIONS = ("1.27.0", "1.33.0")  # the oldest and a current Kubernetes the chart supports
VARIANTS = ("keda", "hpa", "fixed", "keda-rabbitmq")


def _load_renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("openfnf_chart_render", ROOT / "deploy" / "helm" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


render = _load_renderer()


def docs_of(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def rendered(variant: str) -> list[dict[str, Any]]:
    return docs_of(render.render_chart(CHART, [EXAMPLES / f"values-{variant}.yaml"]))


def one(docs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{kind} *{suffix}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def tpl(src: str, values: Any = None, **root: Any) -> str:
    nodes, defines = render.parse(src, "t")
    ctx = {"Values": values or {}, "Release": {"Name": "r", "Namespace": "ns", "Service": "Helm"}, "Chart": {"Name": "c", "Version": "1", "AppVersion": "2"}, **root}
    return render.Renderer(defines).render(nodes, ctx, ctx)


# ------------------------------------------------------------------ the renderer's semantics


@pytest.mark.parametrize(
    "src, values, expected",
    [
        ("a {{ .Values.x }} b", {"x": 1}, "a 1 b"),
        ("a  {{- .Values.x -}}  b", {"x": "y"}, "ayb"),
        ("a\n  {{- .Values.x }}\nb", {"x": "y"}, "ay\nb"),
        ("{{ .Values.s | quote }}", {"s": 'he said "hi"'}, '"he said \\"hi\\""'),
        ("{{ .Values.missing | default \"d\" }}", {}, "d"),
        ("{{ .Values.zero | default 5 }}", {"zero": 0}, "5"),
        ("{{ .Values.b }}", {"b": False}, "false"),
        ("{{ .Values.f }}", {"f": 2.0}, "2"),
        ("{{ if .Values.on }}yes{{ else }}no{{ end }}", {"on": []}, "no"),
        ("{{ if .Values.a }}A{{ else if .Values.b }}B{{ else }}C{{ end }}", {"a": "", "b": "x"}, "B"),
        ("{{ with .Values.m }}{{ .k }}{{ end }}", {"m": {"k": "v"}}, "v"),
        ("{{ with .Values.m }}{{ .k }}{{ else }}none{{ end }}", {"m": {}}, "none"),
        ("{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }}", {"m": {"b": 2, "a": 1}}, "a=1;b=2;"),
        ("{{ range .Values.l }}[{{ . }}]{{ end }}", {"l": ["x", "y"]}, "[x][y]"),
        ("{{ range $q := list \"a\" \"b\" }}{{ $q }}{{ $.Values.sep }}{{ end }}", {"sep": ","}, "a,b,"),
        ("{{ $n := printf \"%s-%s\" .Release.Name .Chart.Name }}{{ $n }}", {}, "r-c"),
        ("{{ toYaml .Values.m | nindent 2 }}", {"m": {"b": [1, 2], "a": "x"}}, "\n  a: x\n  b:\n  - 1\n  - 2"),
        ("{{ .Values.s | b64enc }}", {"s": "redis://x"}, "cmVkaXM6Ly94"),
        ("{{ \"abcdef-\" | trunc 7 | trimSuffix \"-\" }}", {}, "abcdef"),
        ("{{ and .Values.a .Values.b }}|{{ or .Values.c \"z\" }}|{{ not .Values.a }}", {"a": 1, "b": "y", "c": ""}, "y|z|false"),
        ("{{ eq .Values.mode \"keda\" }} {{ ne .Values.mode \"keda\" }}", {"mode": "keda"}, "true false"),
        ("{{ add 5 25 10 }}", {}, "40"),
        ("{{/* a comment */}}x", {}, "x"),
        ('{{ define "n" }}<{{ .a }}|{{ $.a }}>{{ end }}{{ include "n" (dict "a" 1) }}', {}, "<1|1>"),
        ("{{ contains \"fnf\" \"openfnf\" }}", {}, "true"),
    ],
)
def test_renderer_follows_go_template_semantics(src: str, values: Any, expected: str) -> None:
    assert tpl(src, values) == expected


@pytest.mark.parametrize(
    "src, values, message",
    [
        ("{{ .Values.a.b }}", {}, "nil pointer"),
        ("{{ required \"need x\" .Values.x }}", {}, "need x"),
        ("{{ sha1sum .Values.x }}", {"x": 1}, "outside the supported subset"),
        ("{{ if .Values.x }}open", {"x": 1}, "never closed"),
        ("{{ end }}", {}, "end without a block"),
        ("{{ .Values.m }}", {"m": {"a": 1}}, "toYaml"),
        ('{{ include "nope" . }}', {}, "no template"),
        ("{{ template \"x\" . }}", {}, "outside the supported subset"),
    ],
)
def test_renderer_refuses_what_it_does_not_support(src: str, values: Any, message: str) -> None:
    with pytest.raises(render.TemplateError, match=message):
        tpl(src, values)


def test_values_merge_like_helm() -> None:
    base = {"a": {"b": 1, "c": 2}, "l": [1], "d": 1}
    assert render.merge(base, {"a": {"b": 9}, "l": [2], "d": None}) == {"a": {"b": 9, "c": 2}, "l": [2]}


# ------------------------------------------------------------------ the chart


@pytest.mark.parametrize("variant", VARIANTS)
def test_checked_in_renders_match_a_fresh_render(variant: str) -> None:
    """deploy/helm/examples/rendered-*.yaml are what the chart renders now (regenerate: see docs/deploy.md)."""
    fresh = render.render_chart(CHART, [EXAMPLES / f"values-{variant}.yaml"])
    checked_in = (EXAMPLES / f"rendered-{variant}.yaml").read_text(encoding="utf-8")
    assert fresh == checked_in, f"re-render deploy/helm/examples/rendered-{variant}.yaml (docs/deploy.md, 'The chart')"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_rendered_manifests_validate_against_kubernetes_schemas(variant: str, version: str) -> None:
    checked = 0
    for doc in rendered(variant):
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    assert checked >= 8


@pytest.mark.parametrize("variant", VARIANTS)
def test_keda_objects_validate_against_the_keda_schema(variant: str) -> None:
    schema = json.loads(KEDA_SCHEMA.read_text(encoding="utf-8"))
    keda = [d for d in rendered(variant) if d["apiVersion"].startswith("keda.sh/")]
    for doc in keda:
        jsonschema.validate(doc, {**schema, "$ref": f"#/$defs/{doc['kind']}"})
    assert bool(keda) == variant.startswith("keda")


def test_the_validators_can_fail() -> None:
    """A typo in a Deployment or a ScaledObject is caught, so the tests above mean something."""
    docs = rendered("keda")
    deployment = copy.deepcopy(one(docs, "Deployment", "-worker"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProb"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)
    scaled = copy.deepcopy(one(docs, "ScaledObject"))
    scaled["spec"]["triggers"][0]["metadata"]["listLength"] = 20  # must be a string
    schema = json.loads(KEDA_SCHEMA.read_text(encoding="utf-8"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, {**schema, "$ref": "#/$defs/ScaledObject"})


def test_the_chart_has_every_object_the_issue_asks_for() -> None:
    docs = rendered("keda")
    for part in ("-api", "-worker", "-timers"):
        one(docs, "Deployment", part)
        one(docs, "PodDisruptionBudget", part)
    one(docs, "Service")
    one(docs, "Secret")
    one(docs, "ScaledObject")
    fixed = rendered("fixed")
    config = one(fixed, "ConfigMap", "-config")
    assert set(config["data"]) == {"functions.yaml", "throttle.yaml"}
    assert yaml.safe_load(config["data"]["functions.yaml"])["functions"][0]["python"] == "myapp.handlers:hello"
    assert "StartExecution" in config["data"]["throttle.yaml"]
    assert not [d for d in fixed if d["kind"] == "Secret"], "existingSecret: the chart must not create one"
    hpa = one(rendered("hpa"), "HorizontalPodAutoscaler")
    assert {m["type"] for m in hpa["spec"]["metrics"]} == {"Resource", "External"}


def test_config_files_in_the_example_parse_with_openfnf_itself(tmp_path: Path) -> None:
    """The functions file and throttling rules the chart mounts are read by OpenFnF's own loaders."""
    from common.throttle_rules import parse_rules_document
    from worker.functions import load_functions

    config = one(rendered("fixed"), "ConfigMap", "-config")["data"]
    functions = tmp_path / "functions.yaml"
    functions.write_text(config["functions.yaml"], encoding="utf-8")
    assert len(load_functions(functions)) == 2
    rules, chaos = parse_rules_document(config["throttle.yaml"], "throttle.yaml")
    assert [r.action for r in rules] == ["StartExecution"] and not chaos


def test_required_values_fail_the_render() -> None:
    with pytest.raises(render.TemplateError, match="secrets.redisUrl"):
        render.render_chart(CHART, [])


def _containers(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"].rsplit("-", 1)[1]: d["spec"]["template"]["spec"]["containers"][0] for d in docs if d["kind"] == "Deployment"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_setting_the_chart_sets_exists(variant: str) -> None:
    fields = {f"OPENFNF_{name.upper()}" for name in Settings.model_fields}
    docs = rendered(variant)
    names = {e["name"] for c in _containers(docs).values() for e in c["env"]}
    for cm in (d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-settings")):
        names |= set(cm["data"])
    unknown = {n for n in names if n.startswith("OPENFNF_")} - fields
    assert not unknown, f"the chart sets settings OpenFnF does not have: {sorted(unknown)}"
    assert all(n.startswith("OPENFNF_") for n in names)


def _check_cli(argv: list[str]) -> None:
    """argv (after the program name) is a real `openfnf` command line."""
    ctx = cli.make_context("openfnf", list(argv), resilient_parsing=True)
    sub = cli.get_command(ctx, argv[0])
    assert sub is not None, f"no command openfnf {argv[0]}"
    known = {opt for p in sub.params if isinstance(p, click.Option) for opt in p.opts}
    for arg in argv[1:]:
        if arg.startswith("--"):
            assert arg.split("=")[0] in known, f"openfnf {argv[0]} has no option {arg}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_commands_probes_and_ports_are_real(variant: str) -> None:
    containers = _containers(rendered(variant))
    assert set(containers) == {"api", "worker", "timers"}
    for role, c in containers.items():
        assert c["args"][0] == role
        _check_cli(c["args"])
        env = {e["name"]: e.get("value") for e in c["env"]}
        if role == "api":
            port = c["ports"][0]["containerPort"]
            assert env["OPENFNF_PORT"] == str(port)
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        else:
            cmd = c["livenessProbe"]["exec"]["command"]
            assert cmd == ["openfnf", role, "--check"]
            _check_cli(cmd[1:])
            assert env["OPENFNF_METRICS_PORT"] == str(c["ports"][0]["containerPort"])
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"], "heartbeat files need a writable /tmp"


def test_keda_watches_the_queues_the_workers_consume() -> None:
    settings = Settings()
    scaled = one(rendered("keda"), "ScaledObject")
    assert [t["metadata"]["listName"] for t in scaled["spec"]["triggers"]] == [settings.drive_queue, settings.activity_queue]
    assert scaled["spec"]["scaleTargetRef"]["name"] == one(rendered("keda"), "Deployment", "-worker")["metadata"]["name"]
    assert all(t["authenticationRef"]["name"] == one(rendered("keda"), "TriggerAuthentication")["metadata"]["name"] for t in scaled["spec"]["triggers"])
    worker = one(rendered("keda"), "Deployment", "-worker")
    assert "replicas" not in worker["spec"], "an autoscaled Deployment leaves replicas to the autoscaler"
    assert one(rendered("fixed"), "Deployment", "-worker")["spec"]["replicas"] == 4


def test_keda_reads_rabbitmq_queues_with_the_workers_broker_url() -> None:
    """worker.autoscaling.keda.broker=rabbitmq: RabbitMQ triggers on the same queues, authenticated with
    the broker-url the containers read as OPENFNF_BROKER_URL (an amqp:// URL in that example)."""
    settings = Settings()
    docs = rendered("keda-rabbitmq")
    scaled = one(docs, "ScaledObject")
    triggers = scaled["spec"]["triggers"]
    assert [t["type"] for t in triggers] == ["rabbitmq", "rabbitmq"]
    assert [t["metadata"]["queueName"] for t in triggers] == [settings.drive_queue, settings.activity_queue]
    assert all(t["metadata"]["mode"] == "QueueLength" and t["metadata"]["protocol"] == "amqp" for t in triggers)
    auth = one(docs, "TriggerAuthentication")
    assert all(t["authenticationRef"]["name"] == auth["metadata"]["name"] for t in triggers)
    ref = auth["spec"]["secretTargetRef"][0]
    secret = one(docs, "Secret")
    assert ref["parameter"] == "host" and ref["name"] == secret["metadata"]["name"]
    assert base64.b64decode(secret["data"][ref["key"]]).decode().startswith("amqp://")
    env = one(docs, "Deployment", "-worker")["spec"]["template"]["spec"]["containers"][0]["env"]
    broker = next(e for e in env if e["name"] == "OPENFNF_BROKER_URL")
    assert broker["valueFrom"]["secretKeyRef"]["key"] == ref["key"]
    bad = copy.deepcopy(scaled)
    bad["spec"]["triggers"][0]["metadata"]["mode"] = "Length"
    schema = json.loads(KEDA_SCHEMA.read_text(encoding="utf-8"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, {**schema, "$ref": "#/$defs/ScaledObject"})


def test_api_drain_fits_in_the_grace_period() -> None:
    api = one(rendered("keda"), "Deployment", "-api")
    spec = api["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    sleep = int(spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
    assert spec["terminationGracePeriodSeconds"] > sleep + float(env["OPENFNF_SHUTDOWN_TIMEOUT_SECONDS"])


def test_secret_holds_what_the_containers_read() -> None:
    import base64

    docs = rendered("keda")
    secret = one(docs, "Secret")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["redis-url"].startswith("redis://")
    creds = yaml.safe_load(data["credentials.yaml"])
    assert creds["accounts"][0]["access_keys"][0]["id"] == "LTAIexample0000001"
    refs = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for c in _containers(docs).values()
        for e in c["env"]
        if "valueFrom" in e and not e["valueFrom"]["secretKeyRef"].get("optional")
    }
    assert refs <= set(data)


def test_tracing_variables_in_config_settings_reach_every_process(tmp_path: Path) -> None:
    """docs/deploy.md "Tracing": `--set config.settings.OTEL_...` turns tracing on in every Deployment."""
    from common import tracing

    extra = tmp_path / "tracing.yaml"
    extra.write_text(yaml.safe_dump({"config": {"settings": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"}}}), encoding="utf-8")
    docs = docs_of(render.render_chart(CHART, [EXAMPLES / "values-fixed.yaml", extra]))
    settings = one(docs, "ConfigMap", "-settings")
    assert tracing.requested(settings["data"]) and settings["data"]["OPENFNF_LOG_FORMAT"]  # added to, not replacing, the settings
    for role, container in _containers(docs).items():
        sources = [s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s]
        assert settings["metadata"]["name"] in sources, role
    assert not tracing.requested(one(rendered("fixed"), "ConfigMap", "-settings")["data"])  # off unless asked
