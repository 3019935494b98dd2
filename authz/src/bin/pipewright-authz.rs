//! `pipewright-authz simulate`: reads one simulation request (JSON) on
//! standard input, prints the decision (JSON) on standard output. Exit 0 with
//! a decision; 2 with `{"error": {"code", "message"}}` for a malformed policy
//! or request.

use std::io::Read;
use std::process::ExitCode;

use pipewright_authz::simulate::simulate_json;

const USAGE: &str = "usage: pipewright-authz simulate < request.json";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args != ["simulate"] {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("pipewright-authz: cannot read standard input: {e}");
        return ExitCode::from(2);
    }
    let result = simulate_json(&input);
    match result {
        Ok(decision) => {
            println!("{decision}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("{}", error.to_json());
            ExitCode::from(2)
        }
    }
}
