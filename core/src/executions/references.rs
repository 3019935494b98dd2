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
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Quoting {
    None,
    Single,
    Double,
    /// The body of a here-document: never split, whatever its quoting.
    HereDoc,
    /// A comment: nothing there runs.
    Comment,
}

/// What closes an unquoted context.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Closer {
    Top,
    /// `$(` … `)`
    Paren,
    /// `` ` `` … `` ` ``
    Backtick,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Frame {
    Plain { parens: u32, closer: Closer },
    Single,
    Double,
}

/// Reads shell text as far as quoting goes: quotes, `$( )` and backticks
/// (each a context of its own, within quotes too), comments, and
/// here-documents, so that a reference's quoting is known wherever it is.
#[derive(Debug)]
struct Lexer {
    frames: Vec<Frame>,
    /// The character before, and whether it was escaped.
    prev: char,
    escaped: bool,
    word_start: bool,
    comment: bool,
    /// After `<<`: reading the delimiter (its text, quoted, strip tabs).
    delimiter: Option<(String, bool, bool)>,
    after_lt: u8,
    strip_next: bool,
    /// Here-documents whose bodies start at the next line.
    pending: Vec<(String, bool)>,
    /// In a body: its delimiter, tab stripping, and the line so far.
    body: Option<(String, bool, String)>,
}

impl Lexer {
    fn new() -> Self {
        Self {
            frames: vec![Frame::Plain { parens: 0, closer: Closer::Top }],
            prev: '\n',
            escaped: false,
            word_start: true,
            comment: false,
            delimiter: None,
            after_lt: 0,
            strip_next: false,
            pending: Vec::new(),
            body: None,
        }
    }

    fn quoting(&self) -> Quoting {
        if self.body.is_some() {
            return Quoting::HereDoc;
        }
        if self.comment {
            return Quoting::Comment;
        }
        match self.frames.last() {
            Some(Frame::Single) => Quoting::Single,
            Some(Frame::Double) => Quoting::Double,
            _ => Quoting::None,
        }
    }

    /// After a reference (a word's characters).
    fn word(&mut self) {
        self.prev = 'x';
        self.escaped = false;
        self.word_start = false;
        self.after_lt = 0;
    }

    fn feed(&mut self, text: &str) {
        for c in text.chars() {
            self.step(c);
        }
    }

    fn step(&mut self, c: char) {
        if let Some((delimiter, strip, line)) = &mut self.body {
            if c == '\n' {
                let line = if *strip { line.trim_start_matches('\t') } else { line.as_str() };
                if line == delimiter.as_str() {
                    self.body = None;
                    self.next_body();
                } else if let Some((_, _, line)) = &mut self.body {
                    line.clear();
                }
            } else {
                line.push(c);
            }
            return;
        }
        if self.comment {
            if c == '\n' {
                self.comment = false;
                self.newline();
            }
            return;
        }
        if let Some((word, quoted, strip)) = &mut self.delimiter {
            // (Quoted or not, a reference in the body is never split.)
            let ends = c.is_whitespace() || ";|&<>()".contains(c);
            if word.is_empty() && (c == ' ' || c == '\t') {
                return;
            }
            if ends && !word.is_empty() {
                self.pending.push((std::mem::take(word), *strip));
                self.delimiter = None;
                // The character that ended it is read as usual.
            } else if ends {
                self.delimiter = None;
            } else {
                if c == '\'' || c == '"' || c == '\\' {
                    *quoted = true;
                } else {
                    word.push(c);
                }
                return;
            }
        }
        let escaped = std::mem::take(&mut self.escaped);
        let top = self.frames.last().copied().unwrap_or(Frame::Plain { parens: 0, closer: Closer::Top });
        match top {
            Frame::Single => {
                if c == '\'' {
                    self.frames.pop();
                }
            }
            Frame::Double if escaped => {}
            Frame::Double => match c {
                '\\' => self.escaped = true,
                '"' => {
                    self.frames.pop();
                }
                '(' if self.prev == '$' => self.frames.push(Frame::Plain { parens: 0, closer: Closer::Paren }),
                '`' => self.frames.push(Frame::Plain { parens: 0, closer: Closer::Backtick }),
                _ => {}
            },
            Frame::Plain { .. } if escaped => {}
            Frame::Plain { parens, closer } => {
                if c != '<' {
                    if self.after_lt == 2 {
                        // `<<` then this: a here-document (`<<<` is a here-string).
                        self.strip_next = c == '-';
                        self.delimiter = Some((String::new(), false, self.strip_next));
                        self.after_lt = 0;
                        if c != '-' {
                            self.step_delimiter(c);
                        }
                        self.prev = c;
                        return;
                    }
                    self.after_lt = 0;
                }
                match c {
                    '\\' => self.escaped = true,
                    '\'' => self.frames.push(Frame::Single),
                    '"' => self.frames.push(Frame::Double),
                    '#' if self.word_start => self.comment = true,
                    '(' if self.prev == '$' => self.frames.push(Frame::Plain { parens: 0, closer: Closer::Paren }),
                    '(' => self.set_parens(parens + 1),
                    ')' if parens > 0 => self.set_parens(parens - 1),
                    ')' if closer == Closer::Paren => {
                        self.frames.pop();
                    }
                    '`' if closer == Closer::Backtick => {
                        self.frames.pop();
                    }
                    '`' => self.frames.push(Frame::Plain { parens: 0, closer: Closer::Backtick }),
                    '<' => {
                        self.after_lt = if self.after_lt == 0 {
                            1
                        } else if self.after_lt == 1 {
                            2
                        } else {
                            3
                        }
                    }
                    '\n' => self.newline(),
                    _ => {}
                }
            }
        }
        self.word_start = c.is_whitespace() || ";|&()".contains(c);
        self.prev = c;
    }

    fn step_delimiter(&mut self, c: char) {
        if let Some((word, quoted, _)) = &mut self.delimiter {
            if c == '\'' || c == '"' || c == '\\' {
                *quoted = true;
            } else if !(c == ' ' || c == '\t') {
                word.push(c);
            }
        }
    }

    fn set_parens(&mut self, value: u32) {
        if let Some(Frame::Plain { parens, .. }) = self.frames.last_mut() {
            *parens = value;
        }
    }

    fn newline(&mut self) {
        if let Some((word, _, strip)) = self.delimiter.take()
            && !word.is_empty()
        {
            self.pending.push((word, strip));
        }
        self.next_body();
    }

    fn next_body(&mut self) {
        if !self.pending.is_empty() {
            let (delimiter, strip) = self.pending.remove(0);
            self.body = Some((delimiter, strip, String::new()));
        }
    }
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
    let mut lexer = Lexer::new();
    each_reference(text, lookup, |before, reference, found, out| {
        lexer.feed(before);
        let name = variable_name(reference, &found, variables);
        match lexer.quoting() {
            Quoting::None => out.push_str(&format!("\"${{{name}}}\"")),
            // Not split there: a here-document's body (in one whose
            // delimiter is quoted, the name shows as written), a comment.
            Quoting::Double | Quoting::HereDoc | Quoting::Comment => out.push_str(&format!("${{{name}}}")),
            Quoting::Single => out.push_str(&format!("'\"${{{name}}}\"'")),
        }
        lexer.word();
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
            // A command substitution is a context of its own, in quotes too.
            ("V=\"$(cat \"#{Build.VERSION}\")\"", "V=\"$(cat \"${PW_VAR_BUILD_VERSION}\")\""),
            ("V=\"$(echo #{Build.VERSION})\"", "V=\"$(echo \"${PW_VAR_BUILD_VERSION}\")\""),
            (
                "V=\"`echo #{Build.VERSION}`\" #{Build.VERSION}",
                "V=\"`echo \"${PW_VAR_BUILD_VERSION}\"`\" \"${PW_VAR_BUILD_VERSION}\"",
            ),
            ("echo $( (true) ; echo #{Build.VERSION})", "echo $( (true) ; echo \"${PW_VAR_BUILD_VERSION}\")"),
            // A quote in a comment changes nothing.
            ("# it's\necho #{Build.VERSION}", "# it's\necho \"${PW_VAR_BUILD_VERSION}\""),
            ("echo a#b #{Build.VERSION}", "echo a#b \"${PW_VAR_BUILD_VERSION}\""),
            // Nor does one in a here-document.
            (
                "cat <<EOF\nit's #{Build.VERSION}\nEOF\necho #{Build.VERSION}",
                "cat <<EOF\nit's ${PW_VAR_BUILD_VERSION}\nEOF\necho \"${PW_VAR_BUILD_VERSION}\"",
            ),
            (
                "cat <<-'END' >f\n\tdon't\n\tEND\necho #{Build.VERSION}",
                "cat <<-'END' >f\n\tdon't\n\tEND\necho \"${PW_VAR_BUILD_VERSION}\"",
            ),
            (
                "cat <<<\"#{Build.VERSION}\" #{Build.VERSION}",
                "cat <<<\"${PW_VAR_BUILD_VERSION}\" \"${PW_VAR_BUILD_VERSION}\"",
            ),
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
        let text = "echo #{variables.env}\necho \"#{Src.CommitMessage}\"\necho 'v#{variables.env}'\n\
                    echo \"$(printf '%s' \"#{variables.env}\")\"\ncat <<EOF\n#{Src.CommitMessage}\nEOF";
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
        assert_eq!(printed, format!("{env}\n{message}\nv{env}\n{env}\n{message}\n"), "{script}");
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
