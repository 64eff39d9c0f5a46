//! SubmitJob's request body, end to end through the router: decoding (JSON, the AWS model's
//! member names, types), validation, and admission into a DISABLED environment's queue.
//! Checks that no body panics or gets a 5xx, that a refusal is AWS's error envelope with a
//! message, and that an acceptance names the new job.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wasmbatch_fuzz::Service;

static SERVICE: LazyLock<Service> = LazyLock::new(Service::new);

fuzz_target!(|body: &[u8]| {
    // An array job records its children too, which the service's rebuilding counts on.
    let records = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["arrayProperties"]["size"].as_u64())
        .map_or(1, |size| size.saturating_add(1));
    let answer = SERVICE.post("submitjob", body, records);
    if answer.status.is_success() {
        let id = answer.body["jobId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "accepted without a jobId: {}", answer.body);
    }
});
