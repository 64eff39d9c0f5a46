//! RegisterJobDefinition's request body, end to end through the router: decoding (JSON, the
//! AWS model's member names, types) and the definition's validation (resources, retry
//! strategy, timeout, volumes under the volume root, the module its image names).
//! Checks that no body panics or gets a 5xx, that a refusal is AWS's error envelope with a
//! message, and that an acceptance names the new revision.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wasmbatch_fuzz::Service;

static SERVICE: LazyLock<Service> = LazyLock::new(Service::new);

fuzz_target!(|body: &[u8]| {
    let answer = SERVICE.post("registerjobdefinition", body, 1);
    if answer.status.is_success() {
        assert!(
            answer.body["revision"].as_u64().is_some_and(|r| r >= 1),
            "accepted without a revision: {}",
            answer.body
        );
        let arn = answer.body["jobDefinitionArn"].as_str().unwrap_or_default();
        assert!(arn.starts_with("arn:aws:batch:"), "{}", answer.body);
    }
});
