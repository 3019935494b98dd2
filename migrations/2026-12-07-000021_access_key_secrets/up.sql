-- SigV4 (the AWS CLI's and SDKs' signatures) needs an access key's secret
-- itself on the server: it is kept sealed (AES-256-GCM under the
-- installation's secrets key, bound to the key's id), beside the hash the
-- token exchange checks. Keys made before have only the hash: they still
-- exchange tokens, and SigV4 refuses them, saying to make a new key.
ALTER TABLE iam_access_keys ADD COLUMN sealed_secret BYTEA;
