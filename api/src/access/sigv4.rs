//! Verification of AWS Signature Version 4, as the AWS CLI, boto3 and aws-sdk-rust sign: the
//! canonical request is rebuilt from what arrived (method, path, query, the headers the caller
//! says it signed, the payload's hash), and the signature recomputed with the caller's secret.
//! The key derivation and HMAC are `aws-sigv4`'s; this module only arranges the request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use super::Refusal;

/// How far a request's `X-Amz-Date` may be from our clock, either way, as AWS allows.
pub(crate) const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Authorization {
    pub(crate) access_key_id: String,
    /// `YYYYMMDD` of the credential scope.
    pub(crate) date: String,
    pub(crate) region: String,
    pub(crate) service: String,
    /// Lower-case names, as the caller listed them.
    pub(crate) signed_headers: Vec<String>,
    pub(crate) signature: String,
}

impl Authorization {
    /// Parses `AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request,
    /// SignedHeaders=<a;b;c>, Signature=<hex>`.
    pub(crate) fn parse(header: &str) -> Result<Self, Refusal> {
        let incomplete = |what: &str| {
            Refusal::Incomplete(format!(
                "Authorization header {what}; expected `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`"
            ))
        };
        let rest = header
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or_else(|| incomplete("does not use AWS4-HMAC-SHA256"))?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (name, value) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| incomplete("has a part without `=`"))?;
            match name {
                "Credential" => credential = Some(value),
                "SignedHeaders" => signed = Some(value),
                "Signature" => signature = Some(value),
                _ => {}
            }
        }
        let credential = credential.ok_or_else(|| incomplete("has no Credential"))?;
        let signed = signed.ok_or_else(|| incomplete("has no SignedHeaders"))?;
        let signature = signature.ok_or_else(|| incomplete("has no Signature"))?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [key, date, region, service, "aws4_request"] = scope[..] else {
            return Err(incomplete(
                "has a Credential that is not <key>/<date>/<region>/<service>/aws4_request",
            ));
        };
        if key.is_empty() {
            return Err(incomplete("has an empty access key id"));
        }
        Ok(Authorization {
            access_key_id: key.to_string(),
            date: date.to_string(),
            region: region.to_string(),
            service: service.to_string(),
            signed_headers: signed.split(';').map(str::to_ascii_lowercase).collect(),
            signature: signature.to_string(),
        })
    }
}

/// What arrived, as the signature covers it.
pub(crate) struct Arrived<'a> {
    pub(crate) method: &'a str,
    /// The path as sent, still percent-encoded.
    pub(crate) path: &'a str,
    /// The query as sent, without `?`.
    pub(crate) query: &'a str,
    pub(crate) headers: &'a HeaderMap,
    /// Hex SHA-256 of the body, or `UNSIGNED-PAYLOAD` where the caller declared so.
    pub(crate) payload_hash: &'a str,
}

/// When a request was signed, as its `X-Amz-Date` says (checked by [`check_scope`]).
pub(crate) struct SignedAt {
    /// `X-Amz-Date` as it came: it is part of the string to sign.
    amz_date: String,
    time: SystemTime,
}

/// Everything about `authorization` that the headers alone can show: the required signed
/// headers, the date and its skew from `now`, the scope's date, region and service. Checked
/// before a body is read, so a caller without a current, well-scoped credential is refused
/// without costing a buffered body; each refusal says what was wrong.
pub(crate) fn check_scope(
    authorization: &Authorization,
    headers: &HeaderMap,
    region: &str,
    service: &str,
    now: SystemTime,
) -> Result<SignedAt, Refusal> {
    for required in ["host", "x-amz-date"] {
        if !authorization.signed_headers.iter().any(|h| h == required) {
            return Err(Refusal::Signature(format!(
                "'{required}' must be a signed header"
            )));
        }
    }
    let amz_date = header(headers, "x-amz-date")
        .ok_or_else(|| Refusal::Incomplete("the X-Amz-Date header is missing".into()))?;
    let signed_at = parse_amz_date(&amz_date).ok_or_else(|| {
        Refusal::Incomplete(format!(
            "X-Amz-Date {amz_date:?} is not in the form 20261127T235959Z"
        ))
    })?;
    if !amz_date.starts_with(&authorization.date) {
        return Err(Refusal::Signature(format!(
            "Date in Credential scope does not match YYYYMMDD from X-Amz-Date: {} vs {amz_date}",
            authorization.date
        )));
    }
    if authorization.region != region {
        return Err(Refusal::Signature(format!(
            "Credential should be scoped to a valid region: '{}' is not '{region}'",
            authorization.region
        )));
    }
    if authorization.service != service {
        return Err(Refusal::Signature(format!(
            "Credential should be scoped to correct service: '{service}'"
        )));
    }
    if signed_at + MAX_SKEW < now {
        return Err(Refusal::Signature(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
            format_amz_date(now - MAX_SKEW),
            format_amz_date(now)
        )));
    }
    if signed_at > now + MAX_SKEW {
        return Err(Refusal::Signature(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)",
            format_amz_date(now + MAX_SKEW),
            format_amz_date(now)
        )));
    }
    Ok(SignedAt {
        amz_date,
        time: signed_at,
    })
}

/// Checks the signature of `authorization`, whose scope [`check_scope`] passed, over `arrived`
/// (its body's hash included), signed with `secret` for `region` and `service`.
pub(crate) fn check_signature(
    authorization: &Authorization,
    secret: &str,
    arrived: &Arrived<'_>,
    region: &str,
    service: &str,
    signed_at: &SignedAt,
) -> Result<(), Refusal> {
    let canonical = canonical_request(authorization, arrived)?;
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{}/{region}/{service}/aws4_request\n{}",
        signed_at.amz_date,
        authorization.date,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = aws_sigv4::sign::v4::generate_signing_key(secret, signed_at.time, region, service);
    let expected = aws_sigv4::sign::v4::calculate_signature(key, string_to_sign.as_bytes());
    if constant_time_eq(expected.as_bytes(), authorization.signature.as_bytes()) {
        Ok(())
    } else {
        Err(Refusal::Signature(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method."
                .into(),
        ))
    }
}

/// Method, canonical URI, canonical query, canonical headers, signed headers, payload hash.
fn canonical_request(
    authorization: &Authorization,
    arrived: &Arrived<'_>,
) -> Result<String, Refusal> {
    let mut headers = String::new();
    for name in &authorization.signed_headers {
        let values: Vec<String> = arrived
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        if values.is_empty() {
            return Err(Refusal::Signature(format!(
                "signed header '{name}' is not in the request"
            )));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Ok(format!(
        "{}\n{}\n{}\n{headers}\n{}\n{}",
        arrived.method,
        // Services other than S3 sign the path encoded twice: once on the wire, once here.
        encode(arrived.path, false),
        canonical_query(arrived.query),
        authorization.signed_headers.join(";"),
        arrived.payload_hash
    ))
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded_pairs(query)
        .map(|(k, v)| (encode(&k, true), encode(&v, true)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Query pairs with their percent-escapes decoded (but `+` kept: SigV4 callers encode spaces as
/// `%20`, and a literal `+` is signed as `%2B`).
fn form_urlencoded_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2]))
        {
            out.push(high << 4 | low);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

/// RFC 3986 encoding of everything but the unreserved characters (and `/` unless
/// `encode_slash`), upper-case hex, as SigV4 asks.
fn encode(text: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_string)
}

/// Compares without stopping at the first difference, so the time taken says nothing about
/// how much of a guessed signature was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// `20261127T235959Z` → the instant.
pub(crate) fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).ok()?))
}

/// The instant as `20261127T235959Z`.
pub(crate) fn format_amz_date(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_read_and_write_as_aws_spells_them() {
        let time = parse_amz_date("20261127T235959Z").unwrap();
        assert_eq!(format_amz_date(time), "20261127T235959Z");
        assert_eq!(
            time.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_795_823_999
        );
        assert_eq!(
            parse_amz_date("20240229T000000Z")
                .map(format_amz_date)
                .as_deref(),
            Some("20240229T000000Z")
        );
        for bad in [
            "2026-11-27T23:59:59Z",
            "20261327T000000Z",
            "20261127T246000Z",
            "20261127T235959",
        ] {
            assert!(parse_amz_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn authorization_headers_are_parsed_or_refused_saying_what_is_missing() {
        let header = "AWS4-HMAC-SHA256 Credential=AKID/20261127/us-east-1/batch/aws4_request, \
                      SignedHeaders=Host;x-amz-date, Signature=abc";
        let parsed = Authorization::parse(header).unwrap();
        assert_eq!(parsed.access_key_id, "AKID");
        assert_eq!(
            (parsed.region.as_str(), parsed.service.as_str()),
            ("us-east-1", "batch")
        );
        assert_eq!(parsed.signed_headers, ["host", "x-amz-date"]);
        for (bad, says) in [
            ("Bearer xyz", "AWS4-HMAC-SHA256"),
            (
                "AWS4-HMAC-SHA256 Credential=AKID/20261127/us-east-1/batch/aws4_request, Signature=abc",
                "SignedHeaders",
            ),
            (
                "AWS4-HMAC-SHA256 Credential=AKID/20261127/batch, SignedHeaders=host, Signature=abc",
                "Credential",
            ),
        ] {
            let refusal = Authorization::parse(bad).unwrap_err();
            assert!(matches!(refusal, Refusal::Incomplete(_)));
            assert!(refusal.to_string().contains(says), "{refusal}");
        }
    }

    #[test]
    fn the_canonical_query_is_sorted_and_strictly_encoded() {
        assert_eq!(
            canonical_query("follow=true&attempt=1"),
            "attempt=1&follow=true"
        );
        assert_eq!(
            canonical_query("tagKeys=b%20c&tagKeys=a"),
            "tagKeys=a&tagKeys=b%20c"
        );
        assert_eq!(encode("/v1/tags/arn%3Aaws", false), "/v1/tags/arn%253Aaws");
    }
}
