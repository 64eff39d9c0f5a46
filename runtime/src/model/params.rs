//! `Ref::name` placeholders in a job's command: replaced by the submit's `parameters`, which
//! override the job definition's defaults. A placeholder with no value is left as written, as AWS
//! Batch does.

use std::collections::BTreeMap;

/// The command with every `Ref::name` that has a value replaced. Submit parameters win over the
/// definition's defaults.
pub fn substitute(
    command: &[String],
    defaults: &BTreeMap<String, String>,
    submitted: &BTreeMap<String, String>,
) -> Vec<String> {
    let lookup = |name: &str| submitted.get(name).or_else(|| defaults.get(name));
    command
        .iter()
        .map(|arg| substitute_one(arg, &lookup))
        .collect()
}

fn substitute_one<'a>(arg: &str, lookup: &impl Fn(&str) -> Option<&'a String>) -> String {
    const MARK: &str = "Ref::";
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let after = &rest[at + MARK.len()..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        match lookup(name) {
            Some(value) if !name.is_empty() => out.push_str(value),
            _ => {
                out.push_str(MARK);
                out.push_str(name);
            }
        }
        rest = &after[name_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn submit_parameters_override_definition_defaults() {
        let command: Vec<String> = ["-i", "Ref::input", "-c", "Ref::codec"]
            .map(String::from)
            .to_vec();
        let defaults = map(&[("input", "default.mp4"), ("codec", "mp4")]);
        let submitted = map(&[("input", "s3://bucket/movie.mp4")]);
        assert_eq!(
            substitute(&command, &defaults, &submitted),
            ["-i", "s3://bucket/movie.mp4", "-c", "mp4"]
        );
    }

    #[test]
    fn placeholders_inside_an_argument_and_unknown_ones() {
        let command = vec![
            "--out=Ref::dir/Ref::name.txt".to_string(),
            "Ref::missing".into(),
            "Ref::".into(),
        ];
        let defaults = map(&[("dir", "/scratch"), ("name", "result")]);
        assert_eq!(
            substitute(&command, &defaults, &BTreeMap::new()),
            ["--out=/scratch/result.txt", "Ref::missing", "Ref::"]
        );
    }
}
