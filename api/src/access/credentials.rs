//! The credentials file (`<data dir>/credentials.json`): each key's name, access key id,
//! secret and policy. Read at start and on SIGHUP; written only by `wasmbatch keys create`.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::AccessError;
use super::policy::Policy;

/// Where the credentials file lives in a data dir.
pub fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("credentials.json")
}

/// The file's contents.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialsFile {
    /// Every key that may sign requests.
    pub keys: Vec<Key>,
}

/// One caller's key and what it may do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Key {
    /// Who this is, as jobs record it (`submittedBy`) and the log names it.
    pub name: String,
    /// The public half, sent in every request's `Credential=`.
    pub access_key_id: String,
    /// The secret half: signs, never travels.
    pub secret_access_key: String,
    /// What the key may do.
    pub policy: Policy,
}

impl CredentialsFile {
    /// Reads and checks the file at `path`.
    pub fn read(path: &Path) -> Result<Self, AccessError> {
        let invalid = |reason: String| AccessError::Invalid {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read(path).map_err(|e| AccessError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let file: CredentialsFile =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&text))
                .map_err(|e| invalid(format!("{}: {}", e.path(), e.inner())))?;
        file.check().map_err(invalid)?;
        Ok(file)
    }

    /// Names and key ids unique, secrets and names present, policies understood.
    fn check(&self) -> Result<(), String> {
        let (mut names, mut ids) = (BTreeSet::new(), BTreeSet::new());
        for (i, key) in self.keys.iter().enumerate() {
            if key.name.is_empty() || key.access_key_id.is_empty() {
                return Err(format!("keys[{i}]: name and accessKeyId must not be empty"));
            }
            if key.secret_access_key.len() < 16 {
                return Err(format!(
                    "keys[{i}].secretAccessKey: shorter than 16 characters"
                ));
            }
            if !names.insert(key.name.as_str()) {
                return Err(format!("keys[{i}].name: {:?} appears twice", key.name));
            }
            if !ids.insert(key.access_key_id.as_str()) {
                return Err(format!(
                    "keys[{i}].accessKeyId: {:?} appears twice",
                    key.access_key_id
                ));
            }
            key.policy.validate(&format!("keys[{i}].policy"))?;
        }
        Ok(())
    }

    /// Adds a new key named `name` with `policy` to the file at `path` (created if missing),
    /// and returns it. The file is replaced whole (written beside, then renamed) and readable
    /// by its owner only.
    pub fn create_key(path: &Path, name: &str, policy: Policy) -> Result<Key, AccessError> {
        let invalid = |reason: String| AccessError::Invalid {
            path: path.display().to_string(),
            reason,
        };
        let mut file = if path.exists() {
            Self::read(path)?
        } else {
            Self::default()
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        {
            return Err(invalid(format!(
                "--name {name:?}: use letters, digits and - _ . @"
            )));
        }
        if file.keys.iter().any(|k| k.name == name) {
            return Err(invalid(format!("a key named {name:?} exists already")));
        }
        policy.validate("--policy").map_err(invalid)?;
        let key = Key {
            name: name.to_string(),
            access_key_id: format!(
                "WBK{}",
                random_text(17, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
            ),
            secret_access_key: random_text(
                40,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            ),
            policy,
        };
        file.keys.push(key.clone());
        file.check().map_err(invalid)?;
        write_private(path, &serde_json::to_vec_pretty(&file).expect("encodes"))?;
        Ok(key)
    }
}

/// `len` characters drawn uniformly from `alphabet` (whose length divides 256) with the
/// operating system's random source.
fn random_text(len: usize, alphabet: &[u8]) -> String {
    debug_assert_eq!(256 % alphabet.len(), 0);
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect()
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), AccessError> {
    let io = |e: std::io::Error| AccessError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut staged = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        staged
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    staged.write_all(contents).map_err(io)?;
    staged.as_file().sync_all().map_err(io)?;
    staged.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        serde_json::from_value(serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "batch:*", "Resource": "*"}]
        }))
        .unwrap()
    }

    #[test]
    fn created_keys_are_unique_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = credentials_path(dir.path());
        let alice = CredentialsFile::create_key(&path, "alice", policy()).unwrap();
        let bob = CredentialsFile::create_key(&path, "bob", policy()).unwrap();
        assert_ne!(alice.access_key_id, bob.access_key_id);
        assert_ne!(alice.secret_access_key, bob.secret_access_key);
        assert_eq!(alice.secret_access_key.len(), 40);
        let read = CredentialsFile::read(&path).unwrap();
        assert_eq!(read.keys.len(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = CredentialsFile::create_key(&path, "alice", policy()).unwrap_err();
        assert!(again.to_string().contains("exists already"), "{again}");
    }

    #[test]
    fn a_file_with_mistakes_is_refused_naming_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = credentials_path(dir.path());
        std::fs::write(
            &path,
            r#"{"keys": [{"name": "a", "accessKeyId": "K1", "secretAccessKey": "0123456789abcdef",
                "policy": {"Statement": [{"Effect": "Allow", "Action": "batch:*", "Resorce": "*"}]}}]}"#,
        )
        .unwrap();
        let error = CredentialsFile::read(&path).unwrap_err().to_string();
        assert!(error.contains("keys[0].policy.Statement"), "{error}");
        assert!(error.contains("Resorce"), "{error}");
    }
}
