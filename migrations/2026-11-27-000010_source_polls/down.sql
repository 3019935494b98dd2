DROP INDEX pipelines_with_git_sources; DROP TABLE source_polls;
