//! CloudWatch Logs' GetLogEvents, end to end through the router, against a finished job's log
//! of [`LOG_LINES`] events: decoding, the stream check, and above all `nextToken` and `limit`,
//! which index into the stream (issue 13, hole 6: `f/18446744073709551615` with limit 1 once
//! overflowed and panicked). A body that is a JSON object without `logStreamName` is given the
//! real stream's, so the fuzzer spends its time on tokens and limits. Checks that no body
//! panics or gets a 5xx, that a refusal is the error envelope, and that a page holds at most
//! `limit` events and hands back tokens within the stream.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wasmbatch_fuzz::{LOG_LINES, LogStream};

static STREAM: LazyLock<LogStream> = LazyLock::new(LogStream::new);

fuzz_target!(|body: &[u8]| {
    let mut request = serde_json::from_slice::<Value>(body).ok();
    let body = match request.as_mut().and_then(Value::as_object_mut) {
        Some(object) => {
            object
                .entry("logStreamName")
                .or_insert_with(|| STREAM.stream.clone().into());
            serde_json::to_vec(object).expect("a JSON object encodes")
        }
        None => body.to_vec(),
    };
    let sent: Value = serde_json::from_slice(&body).unwrap_or_default();
    let answer = STREAM.get(body);
    if answer.status.is_success() {
        let events = answer.body["events"].as_array().map_or(0, Vec::len);
        let limit = sent["limit"].as_u64().map_or(10_000, |l| l as usize);
        assert!(
            events <= limit.min(LOG_LINES),
            "{events} events: {}",
            answer.body
        );
        for token in ["nextForwardToken", "nextBackwardToken"] {
            let index = answer.body[token]
                .as_str()
                .and_then(|t| t.get(2..))
                .and_then(|i| i.parse::<usize>().ok());
            assert!(
                index.is_some_and(|i| i <= LOG_LINES),
                "{token} outside the stream: {}",
                answer.body
            );
        }
    }
});
