//! CodePipeline's rules and limits for a declaration. Every problem names
//! the offending path and the rule; all are reported at once.

use std::collections::{HashMap, HashSet};

use super::action_types::{self, PropertyType, Registry};
use super::{ActionDeclaration, FailureResult, MASK, PipelineDeclaration, Problem};

/// CodePipeline's quotas.
pub const MAX_STAGES: usize = 50;
pub const MIN_STAGES: usize = 2;
pub const MAX_ACTIONS_PER_STAGE: usize = 50;
pub const MAX_PARALLEL_ACTIONS: usize = 50;
pub const MAX_VARIABLES: usize = 50;
pub const MAX_TRIGGERS: usize = 50;
pub const NAME_MAX: usize = 100;

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn structure(&mut self, path: impl Into<String>, rule: &'static str, message: impl Into<String>) {
        self.problems.push(Problem { path: path.into(), rule, message: message.into(), structural: true });
    }

    fn value(&mut self, path: impl Into<String>, rule: &'static str, message: impl Into<String>) {
        self.problems.push(Problem { path: path.into(), rule, message: message.into(), structural: false });
    }

    /// A name of 1 to `max` characters, each allowed by `allowed`.
    fn name(&mut self, path: &str, what: &str, value: &str, max: usize, allowed: fn(char) -> bool, shown: &str) {
        if value.is_empty() || value.chars().count() > max {
            self.value(
                path,
                "NameLength",
                format!("{what} must be 1 to {max} characters, not {}", value.chars().count()),
            );
        } else if let Some(c) = value.chars().find(|c| !allowed(*c)) {
            self.value(path, "NamePattern", format!("{what} {value:?} has {c:?}; only {shown} are allowed"));
        } else if value == "." || value == ".." {
            // A URL path cannot hold such a segment: clients and browsers
            // remove it, so the API could never be asked about it.
            self.value(path, "NamePattern", format!("{what} cannot be {value:?}: no URL can name it"));
        }
    }
}

fn entity_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || ".@-_".contains(c)
}

fn artifact_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_".contains(c)
}

fn namespace_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "@-_".contains(c)
}

/// Checks a pipeline name alone (path parameters use it too).
pub fn pipeline_name(name: &str) -> Result<(), Problem> {
    let mut checker = Checker { problems: Vec::new() };
    checker.name("name", "the pipeline name", name, NAME_MAX, entity_char, "letters, digits and .@-_");
    checker.problems.into_iter().next().map_or(Ok(()), Err)
}

/// Every `#{namespace.variable}` a value references.
pub fn references(value: &str) -> Vec<(&str, &str)> {
    let mut found = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("#{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let inner = &after[..end];
        if let Some((namespace, variable)) = inner.split_once('.') {
            found.push((namespace, variable));
        }
        rest = &after[end + 1..];
    }
    found
}

/// Every problem with the declaration, in document order; empty when it is
/// valid. `types` are the action types the account may use.
pub fn check(pipeline: &PipelineDeclaration, types: &Registry) -> Vec<Problem> {
    let mut c = Checker { problems: Vec::new() };
    c.name("name", "the pipeline name", &pipeline.name, NAME_MAX, entity_char, "letters, digits and .@-_");
    if let Some(role) = &pipeline.role_arn {
        role_arn(&mut c, "roleArn", role);
    }
    if let Some(store) = &pipeline.artifact_store {
        if !["Local", "S3"].contains(&store.kind.as_str()) {
            c.value(
                "artifactStore.type",
                "ArtifactStoreType",
                format!("{:?} is not a store type: use Local or S3", store.kind),
            );
        } else if store.kind == "S3" && store.location.trim().is_empty() {
            c.value("artifactStore.location", "ArtifactStoreLocation", "an S3 store needs its bucket as location");
        }
    }
    // What only V2 pipelines have, as in CodePipeline.
    if pipeline.pipeline_type == super::PipelineType::V1 {
        let v2_only = [
            ("variables", !pipeline.variables.is_empty()),
            ("triggers", !pipeline.triggers.is_empty()),
            ("executionMode", pipeline.execution_mode != super::ExecutionMode::Superseded),
        ];
        for (field, used) in v2_only {
            if used {
                c.value(field, "V2Only", format!("{field} needs pipelineType V2"));
            }
        }
    }

    // Variables.
    if pipeline.variables.len() > MAX_VARIABLES {
        c.value(
            "variables",
            "TooManyVariables",
            format!("at most {MAX_VARIABLES} variables, not {}", pipeline.variables.len()),
        );
    }
    let mut variables = HashSet::new();
    for (i, variable) in pipeline.variables.iter().enumerate() {
        let path = format!("variables[{i}]");
        c.name(
            &format!("{path}.name"),
            "a variable name",
            &variable.name,
            128,
            namespace_char,
            "letters, digits and @-_",
        );
        if !variables.insert(variable.name.as_str()) {
            c.value(
                format!("{path}.name"),
                "DuplicateVariableName",
                format!("variable {:?} is declared twice", variable.name),
            );
        }
        if variable.default_value.as_ref().is_some_and(|v| v.chars().count() > 1000) {
            c.value(format!("{path}.defaultValue"), "ValueLength", "a default value is at most 1000 characters");
        }
        if variable.description.as_ref().is_some_and(|v| v.chars().count() > 200) {
            c.value(format!("{path}.description"), "ValueLength", "a description is at most 200 characters");
        }
    }

    // Stages.
    let stages = &pipeline.stages;
    if stages.len() < MIN_STAGES {
        c.structure(
            "stages",
            "TooFewStages",
            format!("a pipeline has at least {MIN_STAGES} stages (a source stage and one more), not {}", stages.len()),
        );
    }
    if stages.len() > MAX_STAGES {
        c.structure(
            "stages",
            "TooManyStages",
            format!("a pipeline has at most {MAX_STAGES} stages, not {}", stages.len()),
        );
    }
    let mut stage_names = HashSet::new();
    // Artifacts and namespaces produced so far, by name: (stage index, run order).
    let mut produced: HashMap<&str, (usize, i32)> = HashMap::new();
    let mut namespaces: HashMap<&str, (usize, i32)> = HashMap::new();
    let mut output_names = HashSet::new();
    let mut namespace_names = HashSet::new();
    for (s, stage) in stages.iter().enumerate() {
        let path = format!("stages[{s}]");
        c.name(&format!("{path}.name"), "a stage name", &stage.name, NAME_MAX, entity_char, "letters, digits and .@-_");
        if !stage_names.insert(stage.name.as_str()) {
            c.structure(
                format!("{path}.name"),
                "DuplicateStageName",
                format!("stage {:?} is declared twice", stage.name),
            );
        }
        if stage.actions.is_empty() {
            c.structure(format!("{path}.actions"), "EmptyStage", format!("stage {:?} has no actions", stage.name));
        }
        // No field accepted and ignored: a failed stage fails the execution
        // (FAIL); retrying or rolling back by itself is not built yet.
        if let Some(on_failure) = &stage.on_failure {
            if on_failure.result != FailureResult::Fail {
                c.value(
                    format!("{path}.onFailure.result"),
                    "NotSupported",
                    "only FAIL is built (a failed stage fails the execution); RETRY and ROLLBACK are not yet: \
                     remove onFailure or set it to FAIL, and retry a failed stage with RetryStageExecution",
                );
            }
            if on_failure.retry_configuration.is_some() {
                c.value(
                    format!("{path}.onFailure.retryConfiguration"),
                    "NotSupported",
                    "retryConfiguration is not built yet: remove it",
                );
            }
        }
        if stage.actions.len() > MAX_ACTIONS_PER_STAGE {
            c.structure(
                format!("{path}.actions"),
                "TooManyActions",
                format!("a stage has at most {MAX_ACTIONS_PER_STAGE} actions, not {}", stage.actions.len()),
            );
        }
        let mut per_order: HashMap<i32, usize> = HashMap::new();
        for action in &stage.actions {
            *per_order.entry(action.run_order).or_default() += 1;
        }
        if let Some((order, count)) = per_order.iter().find(|(_, n)| **n > MAX_PARALLEL_ACTIONS) {
            c.structure(
                format!("{path}.actions"),
                "TooManyParallelActions",
                format!("{count} actions share runOrder {order}; at most {MAX_PARALLEL_ACTIONS} run in parallel"),
            );
        }
        if s == 0 && !stage.actions.iter().any(|a| a.action_type_id.category == "Source") {
            c.structure(
                format!("{path}.actions"),
                "FirstStageWithoutSource",
                "the first stage must hold the source actions, and only them",
            );
        }
        let mut action_names = HashSet::new();
        // Within a stage, actions see what lower run orders produced: check in run order.
        let mut order: Vec<usize> = (0..stage.actions.len()).collect();
        order.sort_by_key(|&a| stage.actions[a].run_order);
        for (a, action) in stage.actions.iter().enumerate() {
            let path = format!("{path}.actions[{a}]");
            if !action_names.insert(action.name.as_str()) {
                c.structure(
                    format!("{path}.name"),
                    "DuplicateActionName",
                    format!("action {:?} is declared twice in stage {:?}", action.name, stage.name),
                );
            }
            check_action(&mut c, types, &path, s, action);
            let reads_secrets = [
                action.configuration.get("environmentVariables").and_then(|t| super::environment::parse(t).ok()),
                action.configuration.get("headers").and_then(|t| super::environment::parse_headers(t).ok()),
            ]
            .into_iter()
            .flatten()
            .flatten()
            .any(|v| v.kind == super::environment::VariableType::SecretsManager);
            if reads_secrets && action.role_arn.is_none() && pipeline.role_arn.is_none() {
                c.value(
                    format!("{path}.configuration.environmentVariables"),
                    "RoleRequired",
                    format!(
                        "a SECRETS_MANAGER variable is read under the pipeline's role: give the pipeline (or the action) \
                         a roleArn whose trust policy allows {{\"Service\": \"{}\"}} and whose policies allow \
                         secretsmanager:GetSecretValue on the secret",
                        crate::secrets::SERVICE_PRINCIPAL
                    ),
                );
            }
        }
        // What this stage produces, with the run order that produces it.
        for action in &stage.actions {
            for output in &action.output_artifacts {
                produced.entry(output.name.as_str()).or_insert((s, action.run_order));
            }
            if let Some(namespace) = &action.namespace {
                namespaces.entry(namespace.as_str()).or_insert((s, action.run_order));
            }
        }
        for &a in &order {
            let action = &stage.actions[a];
            let path = format!("{path}.actions[{a}]");
            for (i, input) in action.input_artifacts.iter().enumerate() {
                match produced.get(input.name.as_str()) {
                    Some((ps, po)) if *ps < s || (*ps == s && *po < action.run_order) => {}
                    Some(_) => c.structure(
                        format!("{path}.inputArtifacts[{i}]"),
                        "ArtifactNotProducedUpstream",
                        format!("artifact {:?} is produced by an action that runs at the same time or later; give the producer a lower runOrder or an earlier stage", input.name),
                    ),
                    None => c.structure(
                        format!("{path}.inputArtifacts[{i}]"),
                        "ArtifactNotProducedUpstream",
                        format!("artifact {:?} is not produced by an earlier action", input.name),
                    ),
                }
            }
            let mut own_inputs = HashSet::new();
            for (i, input) in action.input_artifacts.iter().enumerate() {
                if !own_inputs.insert(input.name.as_str()) {
                    c.structure(
                        format!("{path}.inputArtifacts[{i}]"),
                        "DuplicateInputArtifact",
                        format!("artifact {:?} is an input twice", input.name),
                    );
                }
            }
            // Variable references: a namespace of an upstream action, or a pipeline variable.
            for (key, value) in &action.configuration {
                for (namespace, variable) in references(value) {
                    let where_ = format!("{path}.configuration.{key}");
                    match namespace {
                        "variables" if !variables.contains(variable) => c.value(
                            where_,
                            "UnknownVariable",
                            format!("#{{variables.{variable}}} names no pipeline variable; declare it under variables"),
                        ),
                        "variables" | "codepipeline" => {}
                        _ => match namespaces.get(namespace) {
                            Some((ns, no)) if *ns < s || (*ns == s && *no < action.run_order) => {}
                            Some(_) => c.value(
                                where_,
                                "NamespaceNotUpstream",
                                format!(
                                    "namespace {namespace:?} belongs to an action that runs at the same time or later"
                                ),
                            ),
                            None => c.value(
                                where_,
                                "UnknownNamespace",
                                format!("#{{{namespace}.{variable}}} names no namespace of an earlier action"),
                            ),
                        },
                    }
                }
            }
            for (i, output) in action.output_artifacts.iter().enumerate() {
                if !output_names.insert(output.name.as_str()) {
                    c.structure(
                        format!("{path}.outputArtifacts[{i}]"),
                        "DuplicateOutputArtifact",
                        format!(
                            "artifact {:?} is produced twice; output artifact names are unique in the pipeline",
                            output.name
                        ),
                    );
                }
            }
        }
        for (a, action) in stage.actions.iter().enumerate() {
            if let Some(namespace) = &action.namespace {
                let at = format!("{path}.actions[{a}].namespace");
                c.name(&at, "a namespace", namespace, NAME_MAX, namespace_char, "letters, digits and @-_");
                if namespace == "variables" || namespace == "codepipeline" {
                    c.value(at, "ReservedNamespace", format!("namespace {namespace:?} is reserved"));
                } else if !namespace_names.insert(namespace.as_str()) {
                    c.value(at, "DuplicateNamespace", format!("namespace {namespace:?} is declared twice"));
                }
            }
        }
    }

    // Triggers name a Git source action.
    for (i, trigger) in pipeline.triggers.iter().enumerate() {
        let path = format!("triggers[{i}]");
        if trigger.provider_type != "Git" {
            c.value(
                format!("{path}.providerType"),
                "TriggerProvider",
                format!("{:?} is not a trigger provider: use Git", trigger.provider_type),
            );
        }
        check_git_configuration(&mut c, &format!("{path}.gitConfiguration"), &trigger.git_configuration);
        let name = &trigger.git_configuration.source_action_name;
        if pipeline.triggers[..i].iter().any(|t| t.git_configuration.source_action_name == *name) {
            c.value(
                format!("{path}.gitConfiguration.sourceActionName"),
                "DuplicateTrigger",
                format!("{name:?} already has a trigger: put its filters in one trigger"),
            );
        }
        let found = stages.first().into_iter().flat_map(|s| &s.actions).find(|a| a.name == *name);
        if found.is_none_or(|a| a.action_type_id.provider != "Git") {
            c.structure(
                format!("{path}.gitConfiguration.sourceActionName"),
                "TriggerSourceAction",
                format!("{name:?} is not a Git source action of the first stage"),
            );
        }
    }
    if pipeline.triggers.len() > MAX_TRIGGERS {
        c.value("triggers", "TooManyTriggers", format!("at most {MAX_TRIGGERS} triggers"));
    }
    c.problems
}

/// A trigger's filters: CodePipeline's shapes and limits, and patterns
/// that compile.
fn check_git_configuration(c: &mut Checker, path: &str, git: &super::GitConfiguration) {
    use super::triggers::{MAX_FILTERS, PULL_REQUEST_EVENTS};
    if git.push.is_empty() && git.pull_request.is_empty() {
        c.value(path, "TriggerFilters", "a trigger needs push or pullRequest filters");
    }
    for (field, count) in [("push", git.push.len()), ("pullRequest", git.pull_request.len())] {
        if count > MAX_FILTERS {
            c.value(format!("{path}.{field}"), "TooManyFilters", format!("at most {MAX_FILTERS} {field} filters"));
        }
    }
    for (j, push) in git.push.iter().enumerate() {
        let at = format!("{path}.push[{j}]");
        match (&push.tags, &push.branches) {
            (Some(_), Some(_)) => c.value(&at, "TriggerFilters", "a push filter has tags or branches, not both"),
            (None, None) => c.value(&at, "TriggerFilters", "a push filter needs tags or branches"),
            _ => {}
        }
        if push.tags.is_some() && push.file_paths.is_some() {
            c.value(format!("{at}.filePaths"), "TriggerFilters", "filePaths go with branches, not tags");
        }
        for (field, filter) in [("tags", &push.tags), ("branches", &push.branches), ("filePaths", &push.file_paths)] {
            if let Some(filter) = filter {
                check_filter(c, &format!("{at}.{field}"), filter);
            }
        }
    }
    for (j, pull) in git.pull_request.iter().enumerate() {
        let at = format!("{path}.pullRequest[{j}]");
        for (k, event) in pull.events.iter().enumerate() {
            if !PULL_REQUEST_EVENTS.contains(&event.as_str()) {
                c.value(
                    format!("{at}.events[{k}]"),
                    "TriggerFilters",
                    format!("{event:?} is not a pull-request event: use OPEN, UPDATED or CLOSED"),
                );
            } else if pull.events[..k].contains(event) {
                c.value(format!("{at}.events[{k}]"), "TriggerFilters", format!("{event} is named twice"));
            }
        }
        if pull.branches.is_none() {
            c.value(&at, "TriggerFilters", "a pullRequest filter needs branches (the destination branches)");
        }
        for (field, filter) in [("branches", &pull.branches), ("filePaths", &pull.file_paths)] {
            if let Some(filter) = filter {
                check_filter(c, &format!("{at}.{field}"), filter);
            }
        }
    }
}

fn check_filter(c: &mut Checker, path: &str, filter: &super::GitFilter) {
    use super::triggers::{MAX_PATTERNS, check_pattern};
    if filter.includes.is_empty() && filter.excludes.is_empty() {
        c.value(path, "TriggerFilters", "a filter needs includes or excludes");
    }
    for (field, patterns) in [("includes", &filter.includes), ("excludes", &filter.excludes)] {
        if patterns.len() > MAX_PATTERNS {
            c.value(format!("{path}.{field}"), "TooManyPatterns", format!("at most {MAX_PATTERNS} patterns"));
        }
        for (k, pattern) in patterns.iter().enumerate() {
            if let Err(why) = check_pattern(pattern) {
                c.value(format!("{path}.{field}[{k}]"), "TriggerPattern", why);
            }
        }
    }
}

fn role_arn(c: &mut Checker, path: &str, role: &str) {
    let ok = role.strip_prefix("arn:pw:iam::").and_then(|r| r.split_once(":role/")).is_some_and(|(account, name)| {
        account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty()
    });
    if !ok {
        c.value(path, "RoleArnPattern", format!("{role:?} is not a role ARN (arn:pw:iam::ACCOUNT:role/NAME)"));
    }
}

fn check_action(c: &mut Checker, types: &Registry, path: &str, stage: usize, action: &ActionDeclaration) {
    c.name(&format!("{path}.name"), "an action name", &action.name, NAME_MAX, entity_char, "letters, digits and .@-_");
    if !(1..=999).contains(&action.run_order) {
        c.structure(
            format!("{path}.runOrder"),
            "RunOrderRange",
            format!("runOrder is 1 to 999, not {}", action.run_order),
        );
    }
    if let Some(minutes) = action.timeout_in_minutes
        && !(5..=86_400).contains(&minutes)
    {
        c.value(
            format!("{path}.timeoutInMinutes"),
            "TimeoutRange",
            format!("timeoutInMinutes is 5 to 86400, not {minutes}"),
        );
    }
    if let Some(role) = &action.role_arn {
        role_arn(c, &format!("{path}.roleArn"), role);
    }
    for (i, artifact) in action.input_artifacts.iter().enumerate() {
        c.name(
            &format!("{path}.inputArtifacts[{i}].name"),
            "an artifact name",
            &artifact.name,
            NAME_MAX,
            artifact_char,
            "letters, digits and -_",
        );
    }
    for (i, artifact) in action.output_artifacts.iter().enumerate() {
        c.name(
            &format!("{path}.outputArtifacts[{i}].name"),
            "an artifact name",
            &artifact.name,
            NAME_MAX,
            artifact_char,
            "letters, digits and -_",
        );
    }
    let id = &action.action_type_id;
    let is_source = id.category == "Source";
    if stage == 0 && !is_source {
        c.structure(
            format!("{path}.actionTypeId.category"),
            "NonSourceInFirstStage",
            format!("the first stage holds only source actions; move {:?} to a later stage", action.name),
        );
    }
    if stage > 0 && is_source {
        c.structure(
            format!("{path}.actionTypeId.category"),
            "SourceOutsideFirstStage",
            "source actions belong in the first stage",
        );
    }
    if !action_types::CATEGORIES.contains(&id.category.as_str()) {
        c.structure(
            format!("{path}.actionTypeId.category"),
            "UnknownCategory",
            format!("{:?} is not a category: use one of {}", id.category, action_types::CATEGORIES.join(", ")),
        );
        return;
    }
    let Some(kind) = types.find(id) else {
        let known: Vec<String> =
            types.all().filter(|t| t.id.category == id.category).map(|t| t.id.to_string()).collect();
        c.structure(
            format!("{path}.actionTypeId"),
            "UnknownActionType",
            format!(
                "there is no action type {id}; {} has: {}",
                id.category,
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ),
        );
        return;
    };
    for property in &kind.properties {
        let value = action.configuration.get(property.name.as_ref());
        if property.required && value.is_none_or(|v| v.trim().is_empty()) {
            c.structure(
                format!("{path}.configuration"),
                "MissingConfiguration",
                format!("{} needs configuration {:?}", kind.id, property.name),
            );
        }
        let Some(value) = value else { continue };
        let at = format!("{path}.configuration.{}", property.name);
        if value.chars().count() > property.max_length {
            c.value(at.clone(), "ValueLength", format!("at most {} characters", property.max_length));
        }
        let references = !references(value).is_empty();
        // A secret's value is never said back (the message is answered and audited).
        let shown = if property.secret { "the secret value".to_owned() } else { format!("{value:?}") };
        match property.kind {
            PropertyType::Boolean if !references && value != "true" && value != "false" => {
                c.value(at, "ConfigurationType", format!("{shown} is not true or false"));
            }
            PropertyType::Number if !references && value.parse::<u32>().is_err() => {
                c.value(at, "ConfigurationType", format!("{shown} is not a whole number"));
            }
            PropertyType::EnvironmentVariables => {
                if let Err(why) = super::environment::parse(value) {
                    c.value(at, "ConfigurationType", why);
                }
            }
            PropertyType::Headers => {
                if let Err(why) = super::environment::parse_headers(value) {
                    c.value(at, "ConfigurationType", why);
                }
            }
            PropertyType::JsonObject if !references => {
                let object = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(value);
                if !object.is_ok_and(|o| o.values().all(serde_json::Value::is_string)) {
                    c.value(at, "ConfigurationType", "a JSON object of strings is expected, as a string");
                }
            }
            _ => {}
        }
    }
    let http = kind.id.owner == action_types::BUILTIN_OWNER && kind.id.provider == "HTTP";
    if http
        && let Some(minutes) = action.configuration.get("timeoutInMinutes")
        && minutes.parse::<u32>().is_ok_and(|m| !(1..=10_080).contains(&m))
    {
        c.value(
            format!("{path}.configuration.timeoutInMinutes"),
            "ConfigurationType",
            "a callback is waited for 1 to 10080 minutes (7 days)",
        );
    }
    if http
        && let Some(method) = action.configuration.get("method")
        && !action_types::HTTP_METHODS.contains(&method.as_str())
    {
        c.value(
            format!("{path}.configuration.method"),
            "ConfigurationType",
            format!("{method:?} is not one of {}", action_types::HTTP_METHODS.join(", ")),
        );
    }
    for key in action.configuration.keys() {
        if !kind.properties.iter().any(|p| p.name == key.as_str()) {
            let names: Vec<&str> = kind.properties.iter().map(|p| p.name.as_ref()).collect();
            c.structure(
                format!("{path}.configuration.{key}"),
                "UnknownConfiguration",
                format!(
                    "{} has no configuration {key:?}; it has: {}",
                    kind.id,
                    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                ),
            );
        }
    }
    for (key, value) in &action.configuration {
        if value == MASK && kind.properties.iter().any(|p| p.name == key.as_str() && p.secret) {
            c.value(
                format!("{path}.configuration.{key}"),
                "MaskedSecret",
                "this is the mask shown in place of a secret; give the secret itself",
            );
        }
    }
    let counts = [
        ("inputArtifacts", action.input_artifacts.len(), kind.input_artifact_details),
        ("outputArtifacts", action.output_artifacts.len(), kind.output_artifact_details),
    ];
    for (field, count, details) in counts {
        if count < details.minimum_count || count > details.maximum_count {
            let range = if details.minimum_count == details.maximum_count {
                format!("exactly {}", details.minimum_count)
            } else {
                format!("{} to {}", details.minimum_count, details.maximum_count)
            };
            c.structure(
                format!("{path}.{field}"),
                "ArtifactCount",
                format!("{} takes {range} {field}, not {count}", kind.id),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_wherever_they_are_in_a_value() {
        assert_eq!(
            references("deploy #{variables.env} at #{Build.VERSION}#{broken"),
            vec![("variables", "env"), ("Build", "VERSION")]
        );
        assert!(references("no #{reference} here").is_empty());
    }

    #[test]
    fn pipeline_names_follow_codepipelines_pattern() {
        assert!(pipeline_name("web.v2@team-a_1").is_ok());
        assert_eq!(pipeline_name("web app").map_err(|p| p.rule), Err("NamePattern"));
        assert_eq!(pipeline_name(&"x".repeat(101)).map_err(|p| p.rule), Err("NameLength"));
    }
}
