"""The bucket of large values: payloads, results and node outputs over the inline limit.

Private (every public access blocked, TLS only, owner-enforced objects), encrypted with S3-managed
keys, one prefix per tenant (``t/<tenant>/``, ``taskplane.domain.blobs``), and emptied by lifecycle
rules on the clock of the records that name the objects: each object is tagged with a lifetime class
(``domain.blobs.expiry_days``: the wait until its record can end, plus ``retention_days``) and one
rule per class expires it. Uploads (``u/``) expire after a day: a task that names one takes its own
copy under ``t/``.
The bucket is named by CloudFormation: bucket names are global across all accounts.
"""

from __future__ import annotations

from typing import cast

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import EnvironmentConfig
from infra.nag import acknowledge, iam5_resource
from taskplane.domain.blobs import EXPIRY_TAG, OWNED_PREFIX, UPLOADS_PREFIX, expiry_classes


class Blobs(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, cfg: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                # Each object is tagged with the shortest lifetime that outlives its record.
                *(
                    s3.LifecycleRule(
                        id=f"expire-{days}d",
                        prefix=OWNED_PREFIX,
                        tag_filters={EXPIRY_TAG: str(days)},
                        expiration=cdk.Duration.days(days),
                    )
                    for days in expiry_classes(cfg.retention_days)
                ),
                # A task that names an upload takes its own copy: uploads are only a waiting room.
                s3.LifecycleRule(
                    id="uploads",
                    prefix=UPLOADS_PREFIX,
                    expiration=cdk.Duration.days(1),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                ),
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN if cfg.retain_data else cdk.RemovalPolicy.DESTROY,
            auto_delete_objects=False,
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "objects are tenants' payloads and results, each reached only through the API's own roles; "
            "CloudTrail data events are the audit trail where one is wanted, not a second log bucket",
        )

    def settings_fields(self) -> dict[str, str]:
        # URLs handed to clients are S3's own in AWS (the local runtime points them elsewhere).
        return {"blob_bucket": self.bucket.bucket_name, "blob_url_endpoint": ""}

    def grant(self, role: iam.IRole, *, uploads: bool = False) -> None:
        """Get and put the objects tasks and runs own (and so presign URLs for them); with
        ``uploads``, the uploads' too (the API signs upload URLs and copies uploads to tasks)."""
        prefixes = [OWNED_PREFIX, *([UPLOADS_PREFIX] if uploads else [])]
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="Blobs",
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[self.bucket.arn_for_objects(f"{p}*") for p in prefixes],
            )
        )
        # Only the platform's own writes carry a lifetime tag; an upload's URL is signed without
        # one (the uploads' prefix expires by its own lifecycle rule).
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="BlobTags",
                actions=["s3:PutObjectTagging"],
                resources=[self.bucket.arn_for_objects(f"{OWNED_PREFIX}*")],
            )
        )
        stack = cdk.Stack.of(self)
        logical_id = stack.resolve(cast(s3.CfnBucket, self.bucket.node.default_child).logical_id)
        for prefix in prefixes:
            acknowledge(
                role,
                iam5_resource(f"<{logical_id}.Arn>/{prefix}*"),
                "objects are named per tenant and task at run time; the grant is bounded to the "
                "platform's own bucket and its prefix",
            )
