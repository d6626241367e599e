"""`/metrics` as Prometheus reads it: the text parses with prometheus_client's
exposition parser, follows the naming rules, passes `promtool check
metrics` (Debian's prometheus package), and counts a boto3 workload."""

import shutil
import subprocess

import boto3
import pytest
import requests
from botocore.config import Config
from prometheus_client.parser import text_string_to_metric_families

from conftest import ACCESS_KEY, SECRET_KEY


def scrape(server):
    response = requests.get(f"{server.endpoint}/metrics", verify=server.verify, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def client(server):
    return boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY, region_name="us-east-1", verify=server.verify,
                        config=Config(retries={"max_attempts": 1}))


def sample(found, family, name, **labels):
    return sum(s.value for s in found[family].samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_a_boto3_workload_is_counted(server):
    s3 = client(server)
    s3.create_bucket(Bucket="metered")
    before = families(scrape(server))
    body = b"m" * 300_000
    for key in ("a", "b"):
        s3.put_object(Bucket="metered", Key=key, Body=body)
    assert s3.get_object(Bucket="metered", Key="a")["Body"].read() == body
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket="metered", Key="nothing-here")
    after = families(scrape(server))

    def moved(family, name, **labels):
        was = sample(before, family, name, **labels) if family in before else 0
        return sample(after, family, name, **labels) - was

    assert moved("jadfs_s3_requests", "jadfs_s3_requests_total", op="PutObject", status="200") == 2
    assert moved("jadfs_s3_requests", "jadfs_s3_requests_total", op="GetObject", status="200") == 1
    assert moved("jadfs_s3_errors", "jadfs_s3_errors_total", op="GetObject", code="NoSuchKey") == 1
    assert moved("jadfs_s3_request_duration_seconds", "jadfs_s3_request_duration_seconds_count",
                 op="PutObject") == 2
    assert moved("jadfs_s3_sent_bytes", "jadfs_s3_sent_bytes_total", op="GetObject") >= len(body)
    assert moved("jadfs_s3_received_bytes", "jadfs_s3_received_bytes_total", op="PutObject") >= 2 * len(body)


def test_names_follow_prometheus_conventions(server):
    client(server).list_buckets()
    found = families(scrape(server))
    for prefix in ("jadfs_s3_", "jadfs_node_", "jadfs_meta_"):
        assert any(name.startswith(prefix) for name in found), f"no {prefix} family"
    for name, family in found.items():
        assert name.startswith("jadfs_") and name == name.lower(), name
        assert family.documentation, f"{name} has no HELP"
        if family.type == "counter":
            assert all(s.name.endswith("_total") or s.name.endswith("_created") for s in family.samples), name
        if family.type == "histogram":
            assert name.endswith("_seconds"), name
        for s in family.samples:
            # No unbounded labels: never a bucket, a key or an address.
            assert not set(s.labels) & {"bucket", "key", "addr"}, (name, s.labels)
        assert not any(word in name for word in ("_milliseconds", "_kilobytes", "_mib")), name


def test_promtool_accepts_the_text(server):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is needed (Debian: apt install prometheus; .ci/run installs it)"
    client(server).list_buckets()
    checked = subprocess.run([promtool, "check", "metrics"], input=scrape(server), capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
