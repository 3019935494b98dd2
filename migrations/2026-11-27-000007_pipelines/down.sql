DROP TABLE pipeline_versions;
DROP TABLE pipelines;
