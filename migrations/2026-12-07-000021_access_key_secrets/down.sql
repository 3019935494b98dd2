ALTER TABLE iam_access_keys DROP COLUMN sealed_secret;
