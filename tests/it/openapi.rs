use crate::support::{TestApp, workspace_root};

const REGENERATE: &str = "cargo run -q -- openapi > openapi/openapi.json";

fn committed() -> String {
    std::fs::read_to_string(workspace_root().join("openapi/openapi.json"))
        .unwrap_or_else(|e| panic!("openapi/openapi.json is missing ({e}); make it with: {REGENERATE}"))
}

#[test]
fn the_committed_openapi_document_is_what_the_code_generates() {
    let generated = pipewright_api::openapi().to_pretty_json().unwrap();
    assert!(
        committed().trim_end() == generated.trim_end(),
        "openapi/openapi.json differs from what the code generates; review the change and regenerate it with: {REGENERATE}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_served_document_is_the_committed_one_and_docs_work_offline() {
    let app = TestApp::spawn().await;
    let served: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    let committed: serde_json::Value = serde_json::from_str(&committed()).unwrap();
    assert_eq!(served, committed);
    assert!(served["paths"]["/readyz"]["get"].is_object());

    let docs = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200, "/docs leads to the reference page");
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Every script and stylesheet is served by us: nothing from a CDN.
    for attribute in ["src=\"http", "href=\"http", "src='http", "href='http"] {
        assert!(!html.contains(attribute), "external asset in /docs: {html}");
    }
    let initializer = app.get("/docs/swagger-initializer.js").await.text().await.unwrap();
    assert!(initializer.contains("/openapi.json"), "{initializer}");
    assert_eq!(app.get("/docs/swagger-ui-bundle.js").await.status(), 200);
}

/// The committed document is valid OpenAPI 3.1, as openapi-spec-validator
/// (what client generators rely on) checks it: every response described,
/// every reference resolved.
#[test]
fn the_committed_document_validates_as_openapi_3_1() {
    let path = crate::support::workspace_root().join("openapi/openapi.json");
    let script = "import json, sys\n\
        from openapi_spec_validator import OpenAPIV31SpecValidator\n\
        spec = json.load(open(sys.argv[1]))\n\
        errors = list(OpenAPIV31SpecValidator(spec).iter_errors())\n\
        for e in errors[:20]:\n    print('/'.join(str(p) for p in e.path), e.message[:200])\n\
        print(f'{len(errors)} errors')\n\
        sys.exit(1 if errors else 0)\n";
    let output = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("python3 runs (bash deploy/local-services.sh installs openapi-spec-validator)");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{said}");
    assert!(said.contains("0 errors"), "{said}");
}

/// Every example in the committed document is an instance of the schema it
/// illustrates (JSON Schema 2020-12, as OpenAPI 3.1 reads it), so that what
/// a reader copies from /docs is a body the operation takes.
#[test]
fn every_example_in_the_document_fits_its_schema() {
    let path = crate::support::workspace_root().join("openapi/openapi.json");
    let script = "import json, sys, jsonschema\n\
        doc = json.load(open(sys.argv[1]))\n\
        checked, wrong = 0, []\n\
        for path, item in doc['paths'].items():\n\
        \x20   for method, op in item.items():\n\
        \x20       for media, content in (op.get('requestBody', {}).get('content', {}) if isinstance(op, dict) else {}).items():\n\
        \x20           if 'example' not in content: continue\n\
        \x20           schema = dict(content['schema'], components=doc['components'])\n\
        \x20           checked += 1\n\
        \x20           for e in jsonschema.Draft202012Validator(schema).iter_errors(content['example']):\n\
        \x20               wrong.append(f\"{op['operationId']} {list(e.path)}: {e.message[:200]}\")\n\
        print('\\n'.join(wrong)); print(f'{checked} examples, {len(wrong)} wrong')\n\
        sys.exit(1 if wrong or checked == 0 else 0)\n";
    let output = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("python3 runs (bash deploy/local-services.sh installs jsonschema with openapi-spec-validator)");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{said}");
    assert!(said.contains("11 examples, 0 wrong"), "{said}");
}
