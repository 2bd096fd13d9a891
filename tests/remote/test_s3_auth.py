"""moto with authentication on: it checks our SigV4 signatures, and denies a wrong secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import aiopipe as ap

pytestmark = pytest.mark.anyio

BUCKET = "aiopipe-auth"


@pytest.fixture(scope="module")
def auth_moto(moto_starter: Any) -> Iterator[dict[str, str]]:
    """A moto server that authenticates every request after the first 5 (the setup below)."""
    pytest.importorskip("moto.server", reason="moto[server] is in the test extra")
    boto3 = pytest.importorskip("boto3")
    proc, url = moto_starter({"INITIAL_NO_AUTH_ACTION_COUNT": "5"})
    try:
        kw: dict[str, Any] = {
            "endpoint_url": url,
            "region_name": "us-east-1",
            "aws_access_key_id": "setup",
            "aws_secret_access_key": "setup",
        }
        iam = boto3.client("iam", **kw)
        iam.create_user(UserName="reader")  # 1
        key = iam.create_access_key(UserName="reader")["AccessKey"]  # 2
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName="reader", PolicyName="all", PolicyDocument=json.dumps(policy)
        )  # 3
        s3 = boto3.client("s3", **kw)
        s3.create_bucket(Bucket=BUCKET)  # 4
        s3.put_object(Bucket=BUCKET, Key="dir/a b+c.txt", Body=b"x\ny\n")  # 5
        yield {
            "endpoint_url": url,
            "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"],
        }
    finally:
        proc.terminate()
        proc.wait(10)


async def test_signed_reads_and_listing_pass_moto_checks(auth_moto: dict[str, str]) -> None:
    paths = ap.from_files(f"s3://{BUCKET}/dir/*.txt", storage_options=auth_moto)
    with anyio.fail_after(30):
        got = await paths.read(ap.readers.TextLines(storage_options=auth_moto)).collect()
    assert got == ["x", "y"]


async def test_wrong_secret_is_permission_error(auth_moto: dict[str, str]) -> None:
    wrong = {**auth_moto, "secret_access_key": "not-the-secret"}
    url = f"s3://{BUCKET}/dir/a b+c.txt"
    with anyio.fail_after(30), pytest.raises(PermissionError, match="access denied"):
        await ap.from_files([url]).read(ap.readers.WholeFile(storage_options=wrong)).collect()
    with pytest.raises(PermissionError, match=f"s3://{BUCKET}/dir/"):
        ap.from_files(f"s3://{BUCKET}/dir/*.txt", storage_options=wrong)
