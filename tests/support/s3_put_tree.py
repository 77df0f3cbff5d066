#!/usr/bin/env python3
"""Uploads a directory tree to an S3 endpoint (moto on 127.0.0.1 in the
tests): s3_put_tree.py ENDPOINT BUCKET PREFIX DIR [SUBDIR ...]. Only the
SUBDIRs of DIR are uploaded when given. Prints the number of objects."""
import os
import sys

import boto3

endpoint, bucket, prefix, root = sys.argv[1:5]
subdirs = sys.argv[5:] or [""]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id="test",
    aws_secret_access_key="test",
    region_name="us-east-1",
)
n = 0
for sub in subdirs:
    for dirpath, _, files in os.walk(os.path.join(root, sub)):
        for f in files:
            path = os.path.join(dirpath, f)
            key = prefix.rstrip("/") + "/" + os.path.relpath(path, root)
            s3.upload_file(path, bucket, key)
            n += 1
print(n)
