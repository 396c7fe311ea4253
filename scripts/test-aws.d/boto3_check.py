"""Debian's python3-boto3 against p11kms serve: the KMS client pointed at
the endpoint (argv[1]) with the key (argv[2]); credentials and region from
the environment. Exits non-zero with a message on any mismatch."""
import sys

import boto3
from botocore.exceptions import ClientError

endpoint, key_id = sys.argv[1], sys.argv[2]
kms = boto3.client("kms", endpoint_url=endpoint)


def expect_error(code, call, **kw):
    try:
        call(**kw)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        if got != code:
            sys.exit(f"boto3: {call.__name__}: {got}, want {code}")
        return e.response["Error"]["Message"]
    sys.exit(f"boto3: {call.__name__} succeeded, want {code}")


ctx = {"app": "boto3"}
enc = kms.encrypt(KeyId=key_id, Plaintext=b"hello from boto3", EncryptionContext=ctx)
dec = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=ctx, KeyId=key_id)
assert dec["Plaintext"] == b"hello from boto3", dec
assert dec["KeyId"] == enc["KeyId"], (dec["KeyId"], enc["KeyId"])
dk = kms.generate_data_key(KeyId=key_id, NumberOfBytes=24)
assert len(dk["Plaintext"]) == 24
assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]
other = kms.create_key(Description="boto3 other")["KeyMetadata"]["KeyId"]
re = kms.re_encrypt(CiphertextBlob=enc["CiphertextBlob"], SourceEncryptionContext=ctx, DestinationKeyId=other)
assert kms.decrypt(CiphertextBlob=re["CiphertextBlob"])["Plaintext"] == b"hello from boto3"
expect_error("IncorrectKeyException", kms.decrypt, CiphertextBlob=re["CiphertextBlob"], KeyId=key_id)
expect_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=enc["CiphertextBlob"])
msg = expect_error("ValidationException", kms.schedule_key_deletion, KeyId=other, PendingWindowInDays=31)
assert "PendingWindowInDays" in msg, msg
keys = [k["KeyId"] for page in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 1}) for k in page["Keys"]]
assert other in keys and len(keys) == len(set(keys)) >= 2, keys
assert len(kms.generate_random(NumberOfBytes=64)["Plaintext"]) == 64
# (DryRun is newer than Debian's boto3 1.26: TestDryRun covers it with aws-sdk-go-v2.)
print(f"boto3 {boto3.__version__}: Encrypt/Decrypt/GenerateDataKey/ReEncrypt/paging/errors OK over {len(keys)} keys")
