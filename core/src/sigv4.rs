//! AWS Signature Version 4, checked: what the AWS CLI and SDKs sign their
//! requests with (`Authorization: AWS4-HMAC-SHA256 Credential=…,
//! SignedHeaders=…, Signature=…`). The server recomputes the signature from
//! the request as it came (canonical request, string to sign, the signing
//! key derived from the access key's secret and the credential scope) and
//! compares in constant time. Pure: the caller finds the secret of the
//! access key named in the credential (see [`Authorization::parse`]).
//! Written to AWS's published description of SigV4 and checked against its
//! example (see the tests) and against botocore's signatures (tests/it).
//!
//! What the caller (the AWS endpoint) must do besides:
//! - pass the request as it came: the raw path (not normalised), the Host
//!   the client sent (behind a proxy: the one it saw), the raw body (before
//!   any decompression);
//! - check the scope: its service is the protocol's (`codepipeline`, `sts`,
//!   …) and its region the server's;
//! - require the headers that choose the operation to be signed
//!   (`x-amz-target`, `content-type`), since only `host` and `x-amz-date`
//!   are required here;
//! - handle `x-amz-security-token` (temporary credentials) itself;
//! - serve over TLS: as on AWS, a captured request verifies again within the
//!   15 minutes of [`MAX_SKEW`].
//!
//! Query-string (presigned) authentication is not supported.

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

/// How far a request's time may be from the server's (AWS's 15 minutes).
pub const MAX_SKEW: TimeDelta = TimeDelta::minutes(15);

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Why a request's signature is refused, with AWS's error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No SigV4 `Authorization` header (`MissingAuthenticationToken`).
    Missing,
    /// The header is not a whole SigV4 authorization (`IncompleteSignature`).
    Incomplete(String),
    /// The request's time is too far from the server's (`SignatureDoesNotMatch`,
    /// "Signature expired" or "not yet current", as AWS says it).
    Skewed(String),
    /// The signature is not the one the secret makes (`SignatureDoesNotMatch`).
    Mismatch,
    /// The request does not fit its own signature's terms
    /// (`SignatureDoesNotMatch`, with why).
    Inconsistent(String),
}

impl Refusal {
    /// AWS's error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "MissingAuthenticationToken",
            Self::Incomplete(_) => "IncompleteSignature",
            Self::Skewed(_) | Self::Mismatch | Self::Inconsistent(_) => "SignatureDoesNotMatch",
        }
    }

    /// AWS's message.
    pub fn message(&self) -> String {
        match self {
            Self::Missing => "Request is missing Authentication Token".to_owned(),
            Self::Incomplete(why) => why.clone(),
            Self::Skewed(why) | Self::Inconsistent(why) => why.clone(),
            Self::Mismatch => "The request signature we calculated does not match the signature you provided. Check \
                               your AWS Secret Access Key and signing method. Consult the service documentation for \
                               details."
                .to_owned(),
        }
    }
}

/// The parts of a SigV4 `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case header names, as signed, in order.
    pub signed_headers: Vec<String>,
    /// Lower-case hex.
    pub signature: String,
}

impl Authorization {
    /// Reads `AWS4-HMAC-SHA256 Credential=ID/DATE/REGION/SERVICE/aws4_request,
    /// SignedHeaders=a;b, Signature=HEX`.
    pub fn parse(header: Option<&str>) -> Result<Self, Refusal> {
        let header = header.ok_or(Refusal::Missing)?;
        let rest = header.strip_prefix(ALGORITHM).ok_or(Refusal::Missing)?;
        let incomplete = |what: &str| {
            Refusal::Incomplete(format!(
                "Authorization header requires '{what}' parameter. Authorization={}",
                header.chars().take(200).collect::<String>()
            ))
        };
        let mut credential = None;
        let mut signed = None;
        let mut signature = None;
        for part in rest.split(',') {
            let Some((name, value)) = part.trim().split_once('=') else { continue };
            match name.trim() {
                "Credential" => credential = Some(value.trim()),
                "SignedHeaders" => signed = Some(value.trim()),
                "Signature" => signature = Some(value.trim()),
                _ => {}
            }
        }
        let credential = credential.ok_or_else(|| incomplete("Credential"))?;
        let signed = signed.ok_or_else(|| incomplete("SignedHeaders"))?;
        let signature = signature.ok_or_else(|| incomplete("Signature"))?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [id, date, region, service, terminal] = scope.as_slice() else {
            return Err(Refusal::Incomplete(format!(
                "Credential should be scoped to a valid region, and to a date, a service and aws4_request: {credential}"
            )));
        };
        if *terminal != "aws4_request" || id.is_empty() || date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(Refusal::Incomplete(format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not {credential}"
            )));
        }
        let signed_headers: Vec<String> = signed.split(';').map(str::to_ascii_lowercase).collect();
        if !signed_headers.iter().any(|h| h == "host") {
            return Err(Refusal::Incomplete("'Host' must be a signed header".to_owned()));
        }
        if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Refusal::Incomplete("Signature must be 64 hexadecimal digits".to_owned()));
        }
        Ok(Self {
            access_key_id: (*id).to_owned(),
            date: (*date).to_owned(),
            region: (*region).to_owned(),
            service: (*service).to_owned(),
            signed_headers,
            signature: signature.to_ascii_lowercase(),
        })
    }

    /// `DATE/REGION/SERVICE/aws4_request`.
    pub fn scope(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.date, self.region, self.service)
    }
}

/// A request as it came, for its signature to be checked.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded as it was).
    pub path: &'a str,
    /// The query string as sent, without `?`.
    pub query: &'a str,
    /// Every header, names in any case, each value as sent.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// RFC 3986 encoding as SigV4 wants it: every byte but `A-Za-z0-9-_.~`
/// (and `/` when `keep_slash`) as `%XX`.
fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%XX` sequences (two hex digits) decoded; `None` for a raw `+` (a form
/// parser would read a space where SigV4 reads a plus: one query, two
/// meanings) or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => return None,
            b'%' if i + 2 < bytes.len() && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit() => {
                let digit = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
                out.push(digit(bytes[i + 1]) * 16 + digit(bytes[i + 2]));
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The path as botocore signs it for services other than S3: `.` and `..`
/// segments and empty ones (`//`) removed, a trailing `/` kept.
fn normalized_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            other => kept.push(other),
        }
    }
    let first = if path.starts_with('/') { "/" } else { "" };
    let last = if path.ends_with('/') && !kept.is_empty() { "/" } else { "" };
    format!("{first}{}{last}", kept.join("/"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

/// The canonical request (AWS's step 1) for the headers `signed`; `None`
/// for a query that can be read two ways (a raw `+`, bytes that are not
/// UTF-8).
pub fn canonical_request(request: &Request<'_>, signed: &[String]) -> Option<String> {
    let path = normalized_path(request.path);
    let mut query: Vec<(String, String)> = Vec::new();
    for pair in request.query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query.push((uri_encode(&percent_decode(k)?, false), uri_encode(&percent_decode(v)?, false)));
    }
    query.sort();
    let query: Vec<String> = query.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut headers = String::new();
    for name in signed {
        let values: Vec<String> = request
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Some(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        uri_encode(&path, true),
        query.join("&"),
        headers,
        signed.join(";"),
        sha256_hex(request.body)
    ))
}

/// The request's time: `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`, ASCII).
fn request_time(request: &Request<'_>) -> Option<(String, DateTime<Utc>)> {
    let text = request.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("x-amz-date")).map(|(_, v)| v.trim())?;
    if text.len() != 16 || !text.is_ascii() {
        return None;
    }
    let time = NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ").ok()?.and_utc();
    Some((text.to_owned(), time))
}

/// The signature `secret` makes for the request (lower-case hex); `None`
/// when its query can be read two ways.
pub fn signature(request: &Request<'_>, authorization: &Authorization, secret: &str, amz_date: &str) -> Option<String> {
    let canonical = canonical_request(request, &authorization.signed_headers)?;
    let to_sign = format!("{ALGORITHM}\n{amz_date}\n{}\n{}", authorization.scope(), sha256_hex(canonical.as_bytes()));
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), authorization.date.as_bytes());
    for part in [authorization.region.as_bytes(), authorization.service.as_bytes(), b"aws4_request"] {
        key = hmac(&key, part);
    }
    Some(hex(&hmac(&key, to_sign.as_bytes())))
}

/// Checks the request's signature with the secret of the access key its
/// authorization names, at `now`.
pub fn verify(
    request: &Request<'_>,
    authorization: &Authorization,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let (amz_date, time) = request_time(request).ok_or_else(|| {
        Refusal::Incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header".to_owned(),
        )
    })?;
    if !authorization.signed_headers.iter().any(|h| h == "x-amz-date") {
        return Err(Refusal::Incomplete("'X-Amz-Date' must be a signed header".to_owned()));
    }
    if !amz_date.starts_with(&authorization.date) {
        return Err(Refusal::Inconsistent(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            authorization.date,
            amz_date.get(..8).unwrap_or_default()
        )));
    }
    let stamp = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    if time < now - MAX_SKEW {
        return Err(Refusal::Skewed(format!(
            "Signature expired: {} is now earlier than {} ({} - 15 min.)",
            stamp(time),
            stamp(now - MAX_SKEW),
            stamp(now)
        )));
    }
    if time > now + MAX_SKEW {
        return Err(Refusal::Skewed(format!(
            "Signature not yet current: {} is still later than {} ({} + 15 min.)",
            stamp(time),
            stamp(now + MAX_SKEW),
            stamp(now)
        )));
    }
    let expected = signature(request, authorization, secret, &amz_date).ok_or_else(|| {
        Refusal::Inconsistent("the query string must encode '+' as %2B and hold only UTF-8".to_owned())
    })?;
    if crate::signing::same_secret(expected.as_bytes(), authorization.signature.as_bytes()) {
        Ok(())
    } else {
        Err(Refusal::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's example in "Create a signed AWS API request" (IAM ListUsers).
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn headers() -> Vec<(String, String)> {
        vec![
            ("Host".to_owned(), "iam.amazonaws.com".to_owned()),
            ("Content-Type".to_owned(), "application/x-www-form-urlencoded; charset=utf-8".to_owned()),
            ("X-Amz-Date".to_owned(), "20150830T123600Z".to_owned()),
        ]
    }

    fn authorization(signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature={signature}"
        )
    }

    const EXPECTED: &str = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

    /// AWS's example request (IAM ListUsers) and its authorization.
    fn example(headers: &[(String, String)]) -> (Request<'_>, Authorization) {
        let request =
            Request { method: "GET", path: "/", query: "Action=ListUsers&Version=2010-05-08", headers, body: b"" };
        (request, Authorization::parse(Some(&authorization(EXPECTED))).unwrap())
    }

    fn at(text: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ").unwrap().and_utc()
    }

    #[test]
    fn awss_own_example_is_signed_and_verified_and_a_changed_request_is_refused() {
        let headers = headers();
        let (request, parsed) = example(&headers);
        assert_eq!(parsed.access_key_id, "AKIDEXAMPLE");
        assert_eq!(parsed.scope(), "20150830/us-east-1/iam/aws4_request");
        assert_eq!(signature(&request, &parsed, SECRET, "20150830T123600Z").as_deref(), Some(EXPECTED));
        assert_eq!(verify(&request, &parsed, SECRET, at("20150830T123900Z")), Ok(()));
        assert_eq!(verify(&request, &parsed, "another secret", at("20150830T123900Z")), Err(Refusal::Mismatch));
        let changed = Request { query: "Action=ListUsers&Version=2010-05-09", ..request };
        assert_eq!(verify(&changed, &parsed, SECRET, at("20150830T123900Z")), Err(Refusal::Mismatch));
    }

    #[test]
    fn a_request_too_far_from_the_servers_time_is_refused_as_aws_says_it() {
        let headers = headers();
        let (request, parsed) = example(&headers);
        let late = verify(&request, &parsed, SECRET, at("20150830T125200Z")).unwrap_err();
        assert_eq!(late.code(), "SignatureDoesNotMatch");
        assert!(
            late.message().starts_with("Signature expired: 20150830T123600Z is now earlier than"),
            "{}",
            late.message()
        );
        let early = verify(&request, &parsed, SECRET, at("20150830T121900Z")).unwrap_err();
        assert!(early.message().starts_with("Signature not yet current"), "{}", early.message());
        assert_eq!(verify(&request, &parsed, SECRET, at("20150830T125000Z")), Ok(()), "15 minutes is still fine");
    }

    #[test]
    fn incomplete_authorizations_are_refused_naming_what_is_missing() {
        assert_eq!(Authorization::parse(None), Err(Refusal::Missing));
        assert_eq!(Authorization::parse(Some("Bearer abc")), Err(Refusal::Missing));
        let no_signature = "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/iam/aws4_request, SignedHeaders=host";
        assert_eq!(Authorization::parse(Some(no_signature)).unwrap_err().code(), "IncompleteSignature");
        let bad_scope = authorization(EXPECTED).replace("/aws4_request", "/aws5_request");
        assert!(Authorization::parse(Some(&bad_scope)).is_err());
        let no_host = authorization(EXPECTED).replace("content-type;host;x-amz-date", "content-type;x-amz-date");
        assert!(Authorization::parse(Some(&no_host)).unwrap_err().message().contains("Host"));
    }

    #[test]
    fn paths_and_queries_are_made_canonical_as_sigv4_says() {
        let headers = vec![("host".to_owned(), "example.com".to_owned())];
        let request = Request {
            method: "POST",
            path: "/a b/%7E",
            query: "b=2&a=x%20y&a=1&empty",
            headers: &headers,
            body: b"{}",
        };
        let canonical = canonical_request(&request, &["host".to_owned()]).unwrap();
        let lines: Vec<&str> = canonical.lines().collect();
        assert_eq!(lines[1], "/a%20b/%257E", "each byte of the path as sent is encoded again");
        assert_eq!(lines[2], "a=1&a=x%20y&b=2&empty=", "sorted by name then value, each encoded");
        assert_eq!(lines[3], "host:example.com");
        // As botocore: dot segments and empty ones go, a trailing slash stays.
        for (path, canonical) in [("//", "/"), ("/aws/./x/../y/", "/aws/y/"), ("", "/"), ("/a//b", "/a/b")] {
            let request = Request { path, query: "", ..request };
            assert_eq!(canonical_request(&request, &[]).unwrap().lines().nth(1), Some(canonical), "{path}");
        }
        // One query, two readings: refused.
        for query in ["a=x+y", "a=%FF", "a=%+1"] {
            let request = Request { query, ..request };
            assert_eq!(canonical_request(&request, &[]), None, "{query}");
        }
    }

    #[test]
    fn a_date_that_is_not_ascii_is_refused_without_a_panic() {
        let headers = vec![
            ("host".to_owned(), "iam.amazonaws.com".to_owned()),
            ("x-amz-date".to_owned(), "2015\u{a0}8\u{a0}30T123600Z".to_owned()),
        ];
        let request = Request { method: "GET", path: "/", query: "", headers: &headers, body: b"" };
        let parsed = Authorization::parse(Some(&authorization(EXPECTED))).unwrap();
        assert_eq!(
            verify(&request, &parsed, SECRET, at("20150830T123600Z")).unwrap_err().code(),
            "IncompleteSignature"
        );
    }
}
