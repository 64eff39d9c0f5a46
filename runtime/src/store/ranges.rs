//! Reads of part of a table, for records read a few at a time rather than all at start: the
//! records from a key on, and the last record under a prefix. A log's chunks are read this way,
//! so a page of a long log reads its own chunks and not the whole log.

use super::{Store, StoreError, Table};

impl Store {
    /// Up to `most` records of `table` from key `start` on, in key order, while their keys start
    /// with `prefix`; each with its key. Blocking.
    pub(crate) fn load_from<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
        start: &str,
        most: usize,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let read = |e: &dyn std::fmt::Display| StoreError::Read(e.to_string());
        self.read_table(table, |opened| {
            let mut out = Vec::new();
            for entry in opened.range(start..).map_err(|e| read(&e))? {
                if out.len() >= most {
                    break;
                }
                let (key, value) = entry.map_err(|e| read(&e))?;
                if !key.value().starts_with(prefix) {
                    break;
                }
                out.push((
                    key.value().to_string(),
                    decode(table, key.value(), value.value())?,
                ));
            }
            Ok(out)
        })
    }

    /// The record of `table` with the greatest key that starts with `prefix`, if any. `prefix`
    /// must end in a byte below 0xff (every prefix of ours ends in ASCII). Blocking.
    pub(crate) fn load_last<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
    ) -> Result<Option<(String, T)>, StoreError> {
        let read = |e: &dyn std::fmt::Display| StoreError::Read(e.to_string());
        let Some(end) = successor(prefix) else {
            return Err(StoreError::Read(format!(
                "no key range follows prefix {prefix:?}"
            )));
        };
        self.read_table(table, |opened| {
            let mut range = opened.range(prefix..end.as_str()).map_err(|e| read(&e))?;
            match range.next_back() {
                None => Ok(None),
                Some(entry) => {
                    let (key, value) = entry.map_err(|e| read(&e))?;
                    Ok(Some((
                        key.value().to_string(),
                        decode(table, key.value(), value.value())?,
                    )))
                }
            }
        })
    }
}

/// The least string greater than every string that starts with `prefix`: its last character
/// moved one up (for the ASCII prefixes this store uses).
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    let last = chars.pop()?;
    chars.push(char::from_u32(last as u32 + 1)?);
    Some(chars.into_iter().collect())
}

fn decode<T: serde::de::DeserializeOwned>(
    table: Table,
    key: &str,
    value: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(value)
        .map_err(|e| StoreError::Read(format!("record {key:?} in {table:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_stay_within_their_prefix_and_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        let records = ["a-0", "a-1", "a-2", "b-0"]
            .map(|key| super::super::Record::put(Table::LogChunks, key, &key))
            .to_vec();
        store.write(records).await.unwrap();
        let from: Vec<(String, String)> =
            store.load_from(Table::LogChunks, "a-", "a-1", 10).unwrap();
        assert_eq!(
            from.iter().map(|r| &*r.0).collect::<Vec<_>>(),
            ["a-1", "a-2"]
        );
        let one: Vec<(String, String)> = store.load_from(Table::LogChunks, "a-", "a-0", 1).unwrap();
        assert_eq!(one.len(), 1);
        let last: Option<(String, String)> = store.load_last(Table::LogChunks, "a-").unwrap();
        assert_eq!(last.unwrap().0, "a-2");
        let none: Option<(String, String)> = store.load_last(Table::LogChunks, "c-").unwrap();
        assert!(none.is_none());
    }
}
