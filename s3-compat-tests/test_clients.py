"""Real S3 clients against jadfs server: awscli, rclone, s3cmd, boto3.
Every scenario compares bytes, not just exit codes."""

import filecmp
import hashlib
import os
import subprocess

import boto3
import botocore.config
import pytest

from conftest import ACCESS_KEY, SECRET_KEY


def run(cmd, env, check=True):
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def aws(server, *args, check=True):
    return run(["aws", "--endpoint-url", server.endpoint, *args], server.env(), check)


def random_file(path, size, seed):
    """Writes `size` pseudo-random bytes (fast: repeated blocks of a seeded hash stream)."""
    block = b"".join(hashlib.sha256(f"{seed}-{i}".encode()).digest() for i in range(2048))  # 64 KiB
    with open(path, "wb") as f:
        written = 0
        i = 0
        while written < size:
            piece = hashlib.sha256(f"{seed}:{i}".encode()).digest() + block
            piece = piece[: size - written]
            f.write(piece)
            written += len(piece)
            i += 1
    return path


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            h.update(piece)
    return h.hexdigest()


def test_awscli_cp_large_file_both_ways_ls_sync_rm(server, workdir):
    aws(server, "s3", "mb", "s3://awscli")
    # 2 GiB over plain HTTP; over TLS 300 MiB keeps CI within its time.
    size = (2 << 30) if server.ca is None else (300 << 20)
    big = random_file(workdir / "big.bin", size, "awscli")
    aws(server, "s3", "cp", "--no-progress", str(big), "s3://awscli/big/big.bin")
    back = workdir / "big.back"
    aws(server, "s3", "cp", "--no-progress", "s3://awscli/big/big.bin", str(back))
    assert sha256_file(back) == sha256_file(big)

    listing = aws(server, "s3", "ls", "s3://awscli/big/").stdout
    assert "big.bin" in listing and str(size) in listing
    os.remove(big)
    os.remove(back)

    tree = workdir / "tree"
    for i in range(1000):
        sub = tree / f"dir{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        random_file(sub / f"file{i}.dat", (37 * i) % 5000 + 1, f"tree{i}")
    aws(server, "s3", "sync", "--no-progress", str(tree), "s3://awscli/tree")
    again = aws(server, "s3", "sync", "--no-progress", str(tree), "s3://awscli/tree").stdout
    assert again.strip() == "", f"a re-sync transferred files:\n{again}"
    restored = workdir / "restored"
    aws(server, "s3", "sync", "--no-progress", "s3://awscli/tree", str(restored))
    comparison = filecmp.dircmp(tree, restored)
    assert not comparison.diff_files and not comparison.left_only and not comparison.right_only
    for i in range(1000):
        rel = f"dir{i % 10}/file{i}.dat"
        assert filecmp.cmp(tree / rel, restored / rel, shallow=False), rel

    aws(server, "s3", "rm", "--recursive", "s3://awscli/")
    assert aws(server, "s3", "ls", "s3://awscli/").stdout.strip() == ""
    aws(server, "s3", "rb", "s3://awscli")
    missing = aws(server, "s3", "ls", "s3://awscli/", check=False)
    assert missing.returncode != 0 and "NoSuchBucket" in missing.stderr


def rclone_env(server):
    # rclone's S3 SDK cannot use AWS_CA_BUNDLE; it takes its own --ca-cert.
    base = {k: v for k, v in server.env().items() if k != "AWS_CA_BUNDLE"}
    return {**base,
            "RCLONE_CONFIG_JADFS_TYPE": "s3", "RCLONE_CONFIG_JADFS_PROVIDER": "Other",
            "RCLONE_CONFIG_JADFS_ACCESS_KEY_ID": ACCESS_KEY,
            "RCLONE_CONFIG_JADFS_SECRET_ACCESS_KEY": SECRET_KEY,
            "RCLONE_CONFIG_JADFS_ENDPOINT": server.endpoint,
            "RCLONE_CONFIG_JADFS_REGION": "us-east-1",
            **({"RCLONE_CA_CERT": server.ca} if server.ca else {})}


def test_rclone_copy_and_check_download(server, workdir):
    env = rclone_env(server)
    src = workdir / "src"
    (src / "nested" / "deeper").mkdir(parents=True)
    random_file(src / "a.bin", 3 << 20, "ra")
    random_file(src / "nested" / "b.bin", 250 << 20, "rb")  # above rclone's multipart cutoff
    random_file(src / "nested" / "deeper" / "c d é.txt", 123, "rc")
    (src / "empty").write_bytes(b"")
    run(["rclone", "mkdir", "jadfs:rclone"], env)
    run(["rclone", "copy", str(src), "jadfs:rclone/copy"], env)
    run(["rclone", "check", "--download", str(src), "jadfs:rclone/copy"], env)
    back = workdir / "back"
    run(["rclone", "copy", "jadfs:rclone/copy", str(back)], env)
    for rel in ["a.bin", "nested/b.bin", "nested/deeper/c d é.txt", "empty"]:
        assert filecmp.cmp(src / rel, back / rel, shallow=False), rel
    # A changed file is found by check, and sync makes the remote match again.
    (src / "a.bin").write_bytes(b"changed")
    (src / "nested" / "deeper" / "c d é.txt").unlink()
    assert run(["rclone", "check", "--download", str(src), "jadfs:rclone/copy"], env, check=False).returncode != 0
    run(["rclone", "sync", str(src), "jadfs:rclone/copy"], env)
    run(["rclone", "check", "--download", str(src), "jadfs:rclone/copy"], env)


def versioned_bucket(server, bucket):
    aws(server, "s3api", "create-bucket", "--bucket", bucket)
    aws(server, "s3api", "put-bucket-versioning", "--bucket", bucket,
        "--versioning-configuration", "Status=Enabled")


def test_rclone_sees_every_version_of_a_versioned_bucket(server, workdir):
    """rclone on a versioned bucket: copies and checks as on any other, and
    --s3-versions lists the versions a sync overwrote or deleted."""
    if server.ca:
        pytest.skip("the versions it lists do not depend on TLS")
    env = rclone_env(server)
    versioned_bucket(server, "rclone-versions")
    src = workdir / "src"
    src.mkdir()
    random_file(src / "a.bin", 1 << 20, "v1")
    (src / "gone.txt").write_bytes(b"soon deleted")
    run(["rclone", "copy", str(src), "jadfs:rclone-versions"], env)
    random_file(src / "a.bin", 1 << 20, "v2")
    (src / "gone.txt").unlink()
    run(["rclone", "sync", str(src), "jadfs:rclone-versions"], env)
    run(["rclone", "check", "--download", str(src), "jadfs:rclone-versions"], env)
    current = run(["rclone", "lsf", "jadfs:rclone-versions"], env).stdout.split()
    assert current == ["a.bin"], current
    every = run(["rclone", "lsf", "--s3-versions", "jadfs:rclone-versions"], env).stdout.split()
    # The current a.bin, its first version and the deleted file's version, named by their dates.
    assert len(every) == 3 and "a.bin" in every, every
    assert sum(name.startswith("a-v") for name in every) == 1 and any(n.startswith("gone-v") for n in every), every
    versions = json_of(aws(server, "s3api", "list-object-versions", "--bucket", "rclone-versions"))
    assert len(versions["Versions"]) == 3 and len(versions["DeleteMarkers"]) == 1, versions


def json_of(result):
    import json
    return json.loads(result.stdout)


def test_s3cmd_put_get(server, workdir):
    host = server.endpoint.split("://", 1)[1]
    tls = f"use_https = True\nca_certs_file = {server.ca}\n" if server.ca else "use_https = False\n"
    config = workdir / "s3cfg"
    config.write_text(f"[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\nhost_base = {host}\n"
                      f"host_bucket = {host}\n{tls}signature_v2 = False\n")
    s3cmd = ["s3cmd", "-c", str(config)]
    env = server.env()
    run(s3cmd + ["mb", "s3://s3cmd"], env)
    src = random_file(workdir / "s3cmd.bin", 20 << 20, "s3cmd")  # multipart at 15 MiB
    run(s3cmd + ["put", str(src), "s3://s3cmd/obj"], env)
    back = workdir / "s3cmd.back"
    run(s3cmd + ["get", "s3://s3cmd/obj", str(back)], env)
    assert filecmp.cmp(src, back, shallow=False)
    assert "s3://s3cmd/obj" in run(s3cmd + ["ls", "s3://s3cmd"], env).stdout


def boto3_client(server, **config):
    return boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                        verify=server.ca or None, config=botocore.config.Config(**config))


def test_boto3_with_default_checksums(server, workdir):
    s3 = boto3_client(server)
    s3.create_bucket(Bucket="boto3")
    for i, size in enumerate([0, 1, 70_000, 6 << 20]):
        body = os.urandom(size)
        put = s3.put_object(Bucket="boto3", Key=f"obj/{i}", Body=body)
        assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
        got = s3.get_object(Bucket="boto3", Key=f"obj/{i}", ChecksumMode="ENABLED")
        assert got["Body"].read() == body
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="boto3", Prefix="obj/")["Contents"]]
    assert keys == ["obj/0", "obj/1", "obj/2", "obj/3"]

    # upload_file/download_file: multipart transfers with boto3's default checksums.
    src = random_file(workdir / "boto3.bin", 40 << 20, "boto3")
    s3.upload_file(str(src), "boto3", "multipart.bin")
    back = workdir / "boto3.back"
    s3.download_file("boto3", "multipart.bin", str(back))
    assert sha256_file(back) == sha256_file(src)
    assert s3.head_object(Bucket="boto3", Key="multipart.bin")["ETag"].endswith('-5"')

    for algorithm in ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]:
        body = os.urandom(100_000)
        s3.put_object(Bucket="boto3", Key=f"algo/{algorithm}", Body=body, ChecksumAlgorithm=algorithm)
        assert s3.get_object(Bucket="boto3", Key=f"algo/{algorithm}")["Body"].read() == body

    # Multipart with each checksum algorithm: every part carries it.
    from boto3.s3.transfer import TransferConfig
    transfer = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    source = random_file(workdir / "algo.bin", (12 << 20) + 7, "algo")
    for algorithm in ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]:
        key = f"multipart/{algorithm}"
        s3.upload_file(str(source), "boto3", key, ExtraArgs={"ChecksumAlgorithm": algorithm}, Config=transfer)
        head = s3.head_object(Bucket="boto3", Key=key, ChecksumMode="ENABLED")
        if algorithm == "CRC64NVME":
            # Full-object only: the CRC of every byte, combined from the parts'.
            import base64
            from awscrt import checksums
            whole = checksums.crc64nvme(source.read_bytes()).to_bytes(8, "big")
            assert head["ChecksumType"] == "FULL_OBJECT", head
            assert head["ChecksumCRC64NVME"] == base64.b64encode(whole).decode(), head
        else:
            assert head[f"Checksum{algorithm}"].endswith("-3"), head
        back = workdir / f"algo-{algorithm}.back"
        s3.download_file("boto3", key, str(back))
        assert sha256_file(back) == sha256_file(source)

    deleted = s3.delete_objects(Bucket="boto3", Delete={"Objects": [{"Key": f"obj/{i}"} for i in range(4)]})
    assert len(deleted["Deleted"]) == 4
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket="boto3", Key="obj/0")
    error = pytest.raises(Exception, s3.create_bucket, Bucket="Bad_Name")
    assert "InvalidBucketName" in str(error.value)


@pytest.mark.parametrize("signature_version", ["s3", "s3v4"])
def test_boto3_presigned_post_form_upload(server, workdir, signature_version):
    """A browser-style form upload with a policy boto3 signed (SigV2 or SigV4 fields)."""
    import requests

    s3 = boto3_client(server)
    signer = boto3_client(server, signature_version=signature_version)  # only signs the form policy
    bucket = f"forms-{signature_version}"
    s3.create_bucket(Bucket=bucket)
    post = signer.generate_presigned_post(
        bucket, "uploads/${filename}",
        Fields={"Content-Type": "text/plain", "x-amz-meta-origin": "browser"},
        Conditions=[["starts-with", "$key", "uploads/"], {"Content-Type": "text/plain"},
                    {"x-amz-meta-origin": "browser"}, ["content-length-range", 1, 1 << 20]],
        ExpiresIn=600)
    body = os.urandom(300_000)
    response = requests.post(post["url"], data=post["fields"], files={"file": ("report.txt", body)}, verify=server.verify)
    assert response.status_code == 204, response.text
    got = s3.get_object(Bucket=bucket, Key="uploads/report.txt")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"origin": "browser"}

    too_big = requests.post(post["url"], data=post["fields"], files={"file": ("big.txt", b"x" * ((1 << 20) + 1))}, verify=server.verify)
    assert too_big.status_code == 400 and "EntityTooLarge" in too_big.text
    field = "x-amz-signature" if "x-amz-signature" in post["fields"] else "signature"
    tampered = dict(post["fields"], **{field: "0" * len(post["fields"][field])})
    denied = requests.post(post["url"], data=tampered, files={"file": ("x.txt", b"x")}, verify=server.verify)
    assert denied.status_code == 403 and "SignatureDoesNotMatch" in denied.text, denied.text


def test_restic_on_a_versioned_bucket_with_prune(server, workdir):
    """restic into a versioned bucket: two backups, forget and prune (its
    deletes become delete markers), then check --read-data and restore."""
    if server.ca:
        pytest.skip("covered over HTTP; restic over TLS is tested above")
    tree = workdir / "data"
    tree.mkdir()
    for i in range(10):
        random_file(tree / f"f{i}.bin", 2 << 20, f"first{i}")
    versioned_bucket(server, "restic-versions")
    env = {**server.env(), "RESTIC_PASSWORD": "correct horse battery staple",
           "RESTIC_REPOSITORY": f"s3:{server.endpoint}/restic-versions"}
    run(["restic", "init"], env)
    run(["restic", "backup", str(tree)], env)
    for i in range(5):
        random_file(tree / f"f{i}.bin", 2 << 20, f"second{i}")
    run(["restic", "backup", str(tree)], env)
    run(["restic", "forget", "--keep-last", "1", "--prune"], env)
    run(["restic", "check", "--read-data"], env)
    target = workdir / "restored"
    run(["restic", "restore", "latest", "--target", str(target)], env)
    diff = subprocess.run(["diff", "-r", str(tree), str(target / tree.relative_to("/"))],
                          capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    versions = json_of(aws(server, "s3api", "list-object-versions", "--bucket", "restic-versions"))
    assert versions.get("DeleteMarkers"), "prune's deletes are delete markers, the versions kept"


def test_restic_backup_check_restore(server, workdir):
    """restic init, backup of a tree, check --read-data, restore, byte-for-byte diff."""
    size_mib = 500 if server.ca is None else 50
    tree = workdir / "data"
    for i in range(50):
        sub = tree / f"d{i % 5}"
        sub.mkdir(parents=True, exist_ok=True)
        random_file(sub / f"f{i}.bin", (size_mib << 20) // 50, f"restic{i}")
    (tree / "empty.txt").write_bytes(b"")
    env = {**server.env(), "RESTIC_PASSWORD": "correct horse battery staple",
           "RESTIC_REPOSITORY": f"s3:{server.endpoint}/restic-{'tls' if server.ca else 'plain'}"}
    tls = ["--cacert", server.ca] if server.ca else []
    run(["restic", *tls, "init"], env)
    run(["restic", *tls, "backup", str(tree)], env)
    run(["restic", *tls, "check", "--read-data"], env)
    target = workdir / "restored"
    run(["restic", *tls, "restore", "latest", "--target", str(target)], env)
    restored = target / tree.relative_to("/")
    diff = subprocess.run(["diff", "-r", str(tree), str(restored)], capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout + diff.stderr
