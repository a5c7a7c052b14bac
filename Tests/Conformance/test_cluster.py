"""The Kubernetes manifests of Scripts/cluster against the Kubernetes API's schema (kubernetes-validate's bundled
schemas, offline, strict: unknown fields are errors), and the properties the workers rely on."""
import copy
import os

import kubernetes_validate
import pytest
import yaml

CLUSTER = os.path.join(os.path.dirname(__file__), "..", "..", "Scripts", "cluster")
MANIFESTS = ["kubernetes-indexed-job.yaml", "embed-kubernetes-indexed-job.yaml"]
VERSION = "1.30.0"   # the oldest Kubernetes with backoffLimitPerIndex as beta-on-by-default is 1.29; 1.30 is widely run


def load(name):
    with open(os.path.join(CLUSTER, name)) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_matches_the_schema(name):
    kubernetes_validate.validate(load(name), VERSION, strict=True)


@pytest.mark.parametrize("name", MANIFESTS)
def test_indexed_job_on_a_shared_volume(name):
    job = load(name)
    spec = job["spec"]
    assert job["kind"] == "Job" and spec["completionMode"] == "Indexed"
    assert spec["parallelism"] <= spec["completions"]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
    mounts = [m["name"] for c in pod["containers"] for m in c.get("volumeMounts", [])]
    assert claims and all(v["name"] in mounts for v in pod["volumes"] if "persistentVolumeClaim" in v)


def test_the_validator_catches_a_broken_manifest():
    job = copy.deepcopy(load(MANIFESTS[0]))
    job["spec"]["completionMode"] = 7                     # wrong type
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, VERSION, strict=True)
    job = copy.deepcopy(load(MANIFESTS[0]))
    job["spec"]["template"]["spec"]["restartPolicyy"] = "Never"   # unknown field: strict mode refuses it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, VERSION, strict=True)
