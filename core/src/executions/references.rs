//! Variable references (`#{namespace.NAME}`) in an action's configuration:
//! replaced by their values, or, where a shell runs the text, by shell
//! variables that hold them, so that no value (a pipeline variable a caller
//! of StartPipelineExecution set, a commit message) can become shell syntax.

use std::collections::BTreeMap;

/// `value` with each reference that `lookup` knows replaced by what
/// `replace` makes of it (given the reference and its value); unknown ones
/// stay as written.
fn each_reference(
    value: &str,
    lookup: impl Fn(&str) -> Option<String>,
    mut replace: impl FnMut(&str, &str, String, &mut String),
) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("#{") {
        let before = &rest[..start];
        out.push_str(before);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let reference = &after[..end];
        match lookup(reference) {
            Some(found) => replace(before, reference, found, &mut out),
            None => out.push_str(&rest[start..start + 3 + end]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Each known reference replaced by its value, as text.
pub fn substitute(value: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    each_reference(value, lookup, |_, _, found, out| out.push_str(&found))
}

/// Where a shell's text is, as far as quoting goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoting {
    None,
    Single,
    Double,
}

/// The quoting in force after `text`, starting from `state`.
fn quoting_after(mut state: Quoting, text: &str) -> Quoting {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        state = match (state, c) {
            (Quoting::None | Quoting::Double, '\\') => {
                chars.next();
                state
            }
            (Quoting::None, '\'') => Quoting::Single,
            (Quoting::Single, '\'') => Quoting::None,
            (Quoting::None, '"') => Quoting::Double,
            (Quoting::Double, '"') => Quoting::None,
            _ => state,
        };
    }
    state
}

/// The shell variable that holds a reference's value: `PW_VAR_` and the
/// reference in capitals, other characters as `_` (`#{Build.VERSION}` is
/// `$PW_VAR_BUILD_VERSION`); another reference of the same spelling gets a
/// number.
fn variable_name(reference: &str, value: &str, taken: &BTreeMap<String, String>) -> String {
    let base: String =
        reference.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    let base = format!("PW_VAR_{base}");
    let mut name = base.clone();
    let mut n = 2;
    while taken.get(&name).is_some_and(|v| v != value) {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}

/// Shell text with each known reference replaced by a shell variable whose
/// value is put in `variables`: quoted as one word outside quotes, plain in
/// double quotes, and out of and back into single quotes there.
pub fn for_shell(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
    variables: &mut BTreeMap<String, String>,
) -> String {
    let mut state = Quoting::None;
    each_reference(text, lookup, |before, reference, found, out| {
        state = quoting_after(state, before);
        let name = variable_name(reference, &found, variables);
        match state {
            Quoting::None => out.push_str(&format!("\"${{{name}}}\"")),
            Quoting::Double => out.push_str(&format!("${{{name}}}")),
            Quoting::Single => out.push_str(&format!("'\"${{{name}}}\"'")),
        }
        variables.insert(name, found);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(reference: &str) -> Option<String> {
        match reference {
            "variables.env" => Some("prod'\"; echo INJECTED-as-$(id -un) `id` \\".to_owned()),
            "Src.CommitMessage" => Some("fix: it's \"done\"\n$(reboot)".to_owned()),
            "Build.VERSION" => Some("1.2.3".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn references_become_shell_variables_in_every_kind_of_quoting() {
        let cases = [
            ("deploy #{variables.env}", "deploy \"${PW_VAR_VARIABLES_ENV}\""),
            ("echo \"to #{variables.env} now\"", "echo \"to ${PW_VAR_VARIABLES_ENV} now\""),
            ("echo 'to #{variables.env} now'", "echo 'to '\"${PW_VAR_VARIABLES_ENV}\"' now'"),
            ("echo \"it's\" #{Build.VERSION}", "echo \"it's\" \"${PW_VAR_BUILD_VERSION}\""),
            ("echo \\' #{Build.VERSION}", "echo \\' \"${PW_VAR_BUILD_VERSION}\""),
            ("echo #{Nope.X} #{broken", "echo #{Nope.X} #{broken"),
            ("make V=#{Build.VERSION}", "make V=\"${PW_VAR_BUILD_VERSION}\""),
        ];
        for (text, expected) in cases {
            let mut variables = BTreeMap::new();
            assert_eq!(for_shell(text, values, &mut variables), expected, "{text}");
        }
        let mut variables = BTreeMap::new();
        for_shell("#{variables.env} #{Src.CommitMessage}", values, &mut variables);
        assert_eq!(variables.get("PW_VAR_VARIABLES_ENV"), values("variables.env").as_ref());
        assert_eq!(variables.get("PW_VAR_SRC_COMMITMESSAGE"), values("Src.CommitMessage").as_ref());
    }

    #[test]
    fn hostile_values_run_by_a_real_shell_print_as_text() {
        let text = "echo #{variables.env}\necho \"#{Src.CommitMessage}\"\necho 'v#{variables.env}'";
        let mut variables = BTreeMap::new();
        let script = for_shell(text, values, &mut variables);
        let output = std::process::Command::new("sh")
            .arg("-e")
            .arg("-c")
            .arg(&script)
            .env_clear()
            .envs(&variables)
            .output()
            .expect("sh runs");
        let printed = String::from_utf8_lossy(&output.stdout);
        let env = values("variables.env").unwrap_or_default();
        let message = values("Src.CommitMessage").unwrap_or_default();
        assert_eq!(printed, format!("{env}\n{message}\nv{env}\n"), "{script}");
        assert!(!printed.contains("INJECTED-as-r"), "{printed}");
    }

    #[test]
    fn two_references_of_one_spelling_get_two_variables() {
        let mut taken = BTreeMap::from([("PW_VAR_A_B".to_owned(), "one".to_owned())]);
        assert_eq!(variable_name("a.b", "one", &taken), "PW_VAR_A_B");
        assert_eq!(variable_name("a-b", "two", &taken), "PW_VAR_A_B_2");
        taken.insert("PW_VAR_A_B_2".to_owned(), "two".to_owned());
        assert_eq!(variable_name("a_b", "three", &taken), "PW_VAR_A_B_3");
    }
}
