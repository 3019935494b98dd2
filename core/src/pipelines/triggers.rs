//! V2 triggers: which changes of a Git source start its pipeline. A change
//! (a push of a branch or a tag, a pull request's event) is matched here
//! against the source's trigger — its push and pull-request filters, with
//! glob patterns on branch, tag and file names — or, when no trigger names
//! the source, against its own `branch`. Polled and webhook-delivered
//! changes are decided by the same function, and the filter that matched is
//! what the execution's trigger records.

use globset::{Glob, GlobBuilder};
use serde::{Deserialize, Serialize};

use super::{ActionDeclaration, GitFilter, GitPushFilter, PipelineDeclaration, PipelineTriggerDeclaration};

/// At most this many push (and pull-request) filters per trigger.
pub const MAX_FILTERS: usize = 3;
/// At most this many includes (and excludes) per filter.
pub const MAX_PATTERNS: usize = 8;
/// A pattern is at most this many characters.
pub const PATTERN_MAX: usize = 255;
/// The pull-request events a filter may name.
pub const PULL_REQUEST_EVENTS: [&str; 3] = ["OPEN", "UPDATED", "CLOSED"];

/// A change of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub event: Event,
    /// The commit it brings (a push's new head, a pull request's head).
    pub commit: String,
    /// The files it touched: a push's, since the commit seen before (a new
    /// branch: since where it left the source's branch); a pull request's,
    /// since its merge base with the destination. `None`: not known, and
    /// then no file-path filter matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Event {
    /// A push: `ref` is `refs/heads/NAME` or `refs/tags/NAME`.
    Push {
        #[serde(rename = "ref")]
        reference: String,
    },
    PullRequest {
        /// `OPEN`, `UPDATED` or `CLOSED`.
        action: String,
        number: u64,
        source_branch: String,
        destination_branch: String,
        /// Where the head commit is fetched from (`refs/pull/N/head`, or
        /// the source branch's ref).
        #[serde(rename = "ref")]
        reference: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
}

impl Event {
    /// The ref an execution of this change fetches.
    pub fn reference(&self) -> &str {
        match self {
            Event::Push { reference } | Event::PullRequest { reference, .. } => reference,
        }
    }

    /// The branch an execution of it runs (`BranchName`): a push's branch,
    /// a pull request's source branch; none for a tag.
    pub fn branch(&self) -> Option<&str> {
        match self {
            Event::Push { reference } => reference.strip_prefix("refs/heads/"),
            Event::PullRequest { source_branch, .. } => Some(source_branch),
        }
    }
}

/// Which filter started an execution, as its trigger records it: a path in
/// the declaration (`triggers[0].gitConfiguration.push[1]`), or `branch`
/// for the source's own branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub filter: String,
}

/// The trigger that names a source action, if any.
/// (A trigger stored before filters were applied, with none — `push: []`
/// or `[{}]` — is no trigger: the source's branch runs, as it did.)
pub fn trigger_of<'a>(pipeline: &'a PipelineDeclaration, action_name: &str) -> Option<&'a PipelineTriggerDeclaration> {
    pipeline.triggers.iter().find(|t| {
        let git = &t.git_configuration;
        git.source_action_name == action_name
            && (!git.pull_request.is_empty() || git.push.iter().any(|f| f.tags.is_some() || f.branches.is_some()))
    })
}

/// A fingerprint of what decides the action's changes (its trigger, or its
/// branch): when it changes, polling takes the refs it then finds as seen.
pub fn fingerprint(pipeline: &PipelineDeclaration, action: &ActionDeclaration) -> String {
    use sha2::Digest;
    let decided = match trigger_of(pipeline, &action.name) {
        Some(trigger) => serde_json::to_string(trigger).unwrap_or_default(),
        None => configured_branch(action).to_owned(),
    };
    sha2::Sha256::digest(decided.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// What a poll of the source looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// Every branch (a trigger with branch filters), or only `branch`.
    pub all_branches: bool,
    pub tags: bool,
    /// Whether a filter needs the files a change touched.
    pub files: bool,
}

impl Watch {
    /// The refs `git ls-remote` is asked for.
    pub fn patterns(&self, branch: &str) -> Vec<String> {
        let mut patterns =
            vec![if self.all_branches { "refs/heads/*".to_owned() } else { format!("refs/heads/{branch}") }];
        if self.tags {
            patterns.push("refs/tags/*".to_owned());
        }
        patterns
    }
}

/// What polling the action must look at.
pub fn watch(pipeline: &PipelineDeclaration, action: &ActionDeclaration) -> Watch {
    match trigger_of(pipeline, &action.name) {
        None => Watch { all_branches: false, tags: false, files: false },
        Some(trigger) => {
            let push = &trigger.git_configuration.push;
            Watch {
                all_branches: push.iter().any(|f| f.branches.is_some()),
                tags: push.iter().any(|f| f.tags.is_some()),
                files: push.iter().any(|f| f.file_paths.is_some())
                    || trigger.git_configuration.pull_request.iter().any(|f| f.file_paths.is_some()),
            }
        }
    }
}

/// The branch the action's own configuration names.
pub fn configured_branch(action: &ActionDeclaration) -> &str {
    action.configuration.get("branch").map_or("main", String::as_str)
}

/// Whether a change of the action's repository starts the pipeline, and by
/// which filter. A ref's name alone decides when `change.files` is `None`
/// and no file-path filter is asked.
pub fn matching(pipeline: &PipelineDeclaration, action: &ActionDeclaration, change: &Change) -> Option<Matched> {
    let Some(trigger) = trigger_of(pipeline, &action.name) else {
        // No trigger: a push to the action's own branch.
        let own = format!("refs/heads/{}", configured_branch(action));
        return matches!(&change.event, Event::Push { reference } if *reference == own)
            .then(|| Matched { filter: "branch".to_owned() });
    };
    let at = pipeline.triggers.iter().position(|t| std::ptr::eq(t, trigger)).unwrap_or_default();
    let files = change.files.as_deref();
    match &change.event {
        Event::Push { reference } => trigger
            .git_configuration
            .push
            .iter()
            .position(|f| push_matches(f, reference, files))
            .map(|i| Matched { filter: format!("triggers[{at}].gitConfiguration.push[{i}]") }),
        Event::PullRequest { action, destination_branch, .. } => trigger
            .git_configuration
            .pull_request
            .iter()
            .position(|f| {
                (f.events.is_empty() || f.events.iter().any(|e| e == action))
                    && f.branches.as_ref().is_none_or(|b| names_match(b, destination_branch))
                    && f.file_paths.as_ref().is_none_or(|p| files_match(p, files))
            })
            .map(|i| Matched { filter: format!("triggers[{at}].gitConfiguration.pullRequest[{i}]") }),
    }
}

/// Whether a ref's name alone could start the pipeline (before the files
/// it touched are known): the refs polling keeps track of.
pub fn watches_ref(pipeline: &PipelineDeclaration, action: &ActionDeclaration, reference: &str) -> bool {
    let Some(trigger) = trigger_of(pipeline, &action.name) else {
        return reference.strip_prefix("refs/heads/") == Some(configured_branch(action));
    };
    trigger.git_configuration.push.iter().any(|f| {
        let by_name = GitPushFilter { file_paths: None, ..f.clone() };
        push_matches(&by_name, reference, None)
    })
}

fn push_matches(filter: &GitPushFilter, reference: &str, files: Option<&[String]>) -> bool {
    if let Some(tags) = &filter.tags {
        return reference.strip_prefix("refs/tags/").is_some_and(|tag| names_match(tags, tag));
    }
    let Some(branch) = reference.strip_prefix("refs/heads/") else { return false };
    filter.branches.as_ref().is_some_and(|b| names_match(b, branch))
        && filter.file_paths.as_ref().is_none_or(|p| files_match(p, files))
}

/// A filter's patterns, compiled once.
struct Compiled {
    includes: Option<globset::GlobSet>,
    excludes: globset::GlobSet,
}

impl Compiled {
    fn of(filter: &GitFilter) -> Self {
        let set = |patterns: &[String]| {
            let mut builder = globset::GlobSetBuilder::new();
            for glob in patterns.iter().filter_map(|p| glob(p).ok()) {
                builder.add(glob);
            }
            builder.build().unwrap_or_else(|_| globset::GlobSet::empty())
        };
        Self { includes: (!filter.includes.is_empty()).then(|| set(&filter.includes)), excludes: set(&filter.excludes) }
    }

    /// A name matches an include (or there are none) and no exclude.
    fn matches(&self, name: &str) -> bool {
        self.includes.as_ref().is_none_or(|i| i.is_match(name)) && !self.excludes.is_match(name)
    }
}

fn names_match(filter: &GitFilter, name: &str) -> bool {
    Compiled::of(filter).matches(name)
}

/// Some file the change touched matches (unknown files match nothing).
fn files_match(filter: &GitFilter, files: Option<&[String]>) -> bool {
    let compiled = Compiled::of(filter);
    files.is_some_and(|files| files.iter().any(|f| compiled.matches(f)))
}

/// `*` stays within a path segment (`release/*` is not `release/a/b`), `**`
/// crosses them, as CodePipeline's globs.
fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(true).build()
}

/// Why a pattern cannot be used, if it cannot.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() || pattern.chars().count() > PATTERN_MAX {
        return Err(format!("a pattern is 1–{PATTERN_MAX} characters"));
    }
    if pattern.chars().any(char::is_control) {
        return Err("a pattern has no control characters".to_owned());
    }
    glob(pattern).map(|_| ()).map_err(|e| format!("{pattern:?} is not a glob pattern: {}", e.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(triggers: serde_json::Value) -> PipelineDeclaration {
        serde_json::from_value(serde_json::json!({
            "name": "p",
            "stages": [{"name": "Source", "actions": [{
                "name": "Code",
                "actionTypeId": {"category": "Source", "owner": "Pipewright", "provider": "Git", "version": "1"},
                "configuration": {"repositoryUrl": "https://git.example/r.git", "branch": "main"},
                "outputArtifacts": [{"name": "Src"}]
            }]}],
            "triggers": triggers
        }))
        .expect("a declaration")
    }

    fn push(reference: &str, files: &[&str]) -> Change {
        Change {
            event: Event::Push { reference: reference.to_owned() },
            commit: "a".repeat(40),
            files: Some(files.iter().map(|f| (*f).to_owned()).collect()),
        }
    }

    fn matched(p: &PipelineDeclaration, change: &Change) -> Option<String> {
        matching(p, &p.stages[0].actions[0], change).map(|m| m.filter)
    }

    #[test]
    fn without_a_trigger_only_the_sources_branch_runs() {
        let p = pipeline(serde_json::json!([]));
        assert_eq!(matched(&p, &push("refs/heads/main", &[])).as_deref(), Some("branch"));
        assert_eq!(matched(&p, &push("refs/heads/dev", &["a"])), None);
        assert_eq!(matched(&p, &push("refs/tags/main", &["a"])), None);
    }

    #[test]
    fn branches_and_paths_decide_a_push_and_the_filter_that_matched_is_named() {
        let p = pipeline(serde_json::json!([{
            "providerType": "Git",
            "gitConfiguration": {"sourceActionName": "Code", "push": [
                {"tags": {"includes": ["v*"], "excludes": ["v*-rc*"]}},
                {"branches": {"includes": ["main", "release/*"]},
                 "filePaths": {"includes": ["services/api/**"], "excludes": ["**/*.md"]}}
            ]}
        }]));
        let api = "services/api/src/main.rs";
        assert_eq!(
            matched(&p, &push("refs/heads/main", &[api])).as_deref(),
            Some("triggers[0].gitConfiguration.push[1]")
        );
        assert!(matched(&p, &push("refs/heads/release/1.2", &["README.md", api])).is_some());
        // `*` stays within a segment.
        assert_eq!(matched(&p, &push("refs/heads/release/1/2", &[api])), None);
        assert_eq!(matched(&p, &push("refs/heads/feature", &[api])), None);
        // Only excluded or other files.
        assert_eq!(matched(&p, &push("refs/heads/main", &["services/api/README.md", "services/web/x"])), None);
        assert_eq!(matched(&p, &push("refs/heads/main", &[])), None);
        // Unknown files match no file-path filter.
        assert_eq!(matched(&p, &Change { files: None, ..push("refs/heads/main", &[]) }), None);
        assert_eq!(matched(&p, &push("refs/tags/v1.0", &[])).as_deref(), Some("triggers[0].gitConfiguration.push[0]"));
        assert_eq!(matched(&p, &push("refs/tags/v1.0-rc1", &[])), None);
        assert_eq!(matched(&p, &push("refs/heads/v1.0", &[])), None);
        let action = &p.stages[0].actions[0];
        assert!(watches_ref(&p, action, "refs/heads/release/3"));
        assert!(!watches_ref(&p, action, "refs/heads/dev"));
        assert_eq!(watch(&p, action), Watch { all_branches: true, tags: true, files: true });
    }

    #[test]
    fn a_pull_request_matches_its_events_and_destination() {
        let p = pipeline(serde_json::json!([{
            "providerType": "Git",
            "gitConfiguration": {"sourceActionName": "Code", "pullRequest": [
                {"events": ["OPEN", "UPDATED"], "branches": {"includes": ["main"]}}
            ]}
        }]));
        let pr = |action: &str, to: &str| Change {
            event: Event::PullRequest {
                action: action.to_owned(),
                number: 7,
                source_branch: "feature".to_owned(),
                destination_branch: to.to_owned(),
                reference: "refs/pull/7/head".to_owned(),
                title: None,
            },
            commit: "b".repeat(40),
            files: None,
        };
        assert_eq!(matched(&p, &pr("OPEN", "main")).as_deref(), Some("triggers[0].gitConfiguration.pullRequest[0]"));
        assert_eq!(matched(&p, &pr("CLOSED", "main")), None);
        assert_eq!(matched(&p, &pr("UPDATED", "dev")), None);
        // A trigger replaces the branch's own detection.
        assert_eq!(matched(&p, &push("refs/heads/main", &["x"])), None);
    }

    #[test]
    fn a_trigger_stored_without_filters_leaves_the_branch_running() {
        let p = pipeline(serde_json::json!([{"providerType": "Git",
            "gitConfiguration": {"sourceActionName": "Code", "push": [{}]}}]));
        assert_eq!(matched(&p, &push("refs/heads/main", &[])).as_deref(), Some("branch"));
    }

    #[test]
    fn patterns_are_checked() {
        assert!(check_pattern("release/*").is_ok());
        assert!(check_pattern("{a,b}/**").is_ok());
        assert!(check_pattern("[unclosed").is_err());
        assert!(check_pattern("").is_err());
        assert!(check_pattern(&"a".repeat(256)).is_err());
        assert!(check_pattern("a\nb").is_err());
    }
}
