//! What a job's `image` names: a module in this server's module store (`NAME`, `NAME:TAG`,
//! `NAME@sha256:<hex>`) or a Wasm OCI artifact in a registry (`HOST[:PORT]/REPO[:TAG]` or
//! `…@sha256:<hex>`), read as Docker reads an image reference.
//!
//! The two never overlap: a module name has no `/`, and a registry reference has one after a
//! host, which is told apart as Docker does (it holds a `.` or a `:`, or is `localhost`). A
//! reference with a `/` but no host (`org/name`) is Docker Hub's short form; it is refused
//! rather than sent to Docker Hub, so that no definition makes the server reach a host its
//! operator did not write down.

use std::fmt;

/// The tag an untagged reference means, and the one a push without a tag moves.
pub const DEFAULT_TAG: &str = "latest";

/// AWS's limit on `containerProperties.image`.
const MAX_LEN: usize = 255;

/// A parsed `image`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A module pushed to this server.
    Local(LocalRef),
    /// A module in an OCI registry.
    Registry(RegistryRef),
}

/// `NAME[:TAG][@sha256:<hex>]` in the module store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRef {
    /// The module's name, `[A-Za-z0-9_-]{1,128}`.
    pub name: String,
    /// `None` means [`DEFAULT_TAG`] unless a digest pins the module.
    pub tag: Option<String>,
    /// `sha256:<hex>`: the module's bytes, whatever tag is also given.
    pub digest: Option<String>,
}

/// `HOST[:PORT]/REPOSITORY[:TAG][@sha256:<hex>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRef {
    /// `host` or `host:port`.
    pub registry: String,
    /// `path/to/repo`, lowercase as OCI requires.
    pub repository: String,
    /// `None` means [`DEFAULT_TAG`] unless a digest pins the manifest.
    pub tag: Option<String>,
    /// `sha256:<hex>` of the manifest (what `docker pull …@` pins), not of the module.
    pub digest: Option<String>,
}

impl RegistryRef {
    /// `host/repo`: the name a pulled module is kept under in the module store.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag asked for, or [`DEFAULT_TAG`].
    pub fn tag_or_default(&self) -> &str {
        self.tag.as_deref().unwrap_or(DEFAULT_TAG)
    }

    /// The registry's host without its port.
    pub fn host(&self) -> &str {
        match self.registry.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => &self.registry,
        }
    }
}

impl LocalRef {
    /// The tag asked for, or [`DEFAULT_TAG`].
    pub fn tag_or_default(&self) -> &str {
        self.tag.as_deref().unwrap_or(DEFAULT_TAG)
    }
}

impl ImageRef {
    /// Parses `image`, or says what is wrong with it.
    pub fn parse(image: &str) -> Result<ImageRef, String> {
        if image.is_empty() || image.len() > MAX_LEN {
            return Err(format!(
                "must be 1 to {MAX_LEN} characters, got {}",
                image.chars().count()
            ));
        }
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) => {
                if !is_digest(digest) {
                    return Err(format!("{digest:?} is not sha256:<64 hex digits>"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (image, None),
        };
        match rest.split_once('/') {
            None => {
                let (name, tag) = split_tag(rest)?;
                check_name(name)?;
                Ok(ImageRef::Local(LocalRef {
                    name: name.to_string(),
                    tag,
                    digest,
                }))
            }
            Some((first, path)) => {
                let is_host = first.contains('.') || first.contains(':') || first == "localhost";
                if !is_host {
                    return Err(format!(
                        "{image:?} names a repository without a registry host (Docker Hub's \
                         short form); write the registry's host, e.g. docker.io/{rest}"
                    ));
                }
                check_host(first)?;
                let (repository, tag) = split_tag(path)?;
                check_repository(repository)?;
                Ok(ImageRef::Registry(RegistryRef {
                    registry: first.to_string(),
                    repository: repository.to_string(),
                    tag,
                    digest,
                }))
            }
        }
    }

    /// What the guest sees as its program name (`argv[0]`): the module's name, or the last
    /// part of its repository.
    pub fn program(&self) -> &str {
        match self {
            ImageRef::Local(local) => &local.name,
            ImageRef::Registry(remote) => remote
                .repository
                .rsplit('/')
                .next()
                .unwrap_or(&remote.repository),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Local(local) => local.fmt(f),
            ImageRef::Registry(remote) => remote.fmt(f),
        }
    }
}

impl fmt::Display for LocalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_reference(f, &self.name, &self.tag, &self.digest)
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_reference(f, &self.name(), &self.tag, &self.digest)
    }
}

fn write_reference(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    tag: &Option<String>,
    digest: &Option<String>,
) -> fmt::Result {
    f.write_str(name)?;
    if let Some(tag) = tag {
        write!(f, ":{tag}")?;
    }
    if let Some(digest) = digest {
        write!(f, "@{digest}")?;
    }
    Ok(())
}

/// Splits `:TAG` off the last path part (a `:` before a `/` is a port, handled by the caller).
fn split_tag(text: &str) -> Result<(&str, Option<String>), String> {
    match text.rsplit_once(':') {
        None => Ok((text, None)),
        Some((name, tag)) => {
            check_tag(tag)?;
            Ok((name, Some(tag.to_string())))
        }
    }
}

/// A tag as OCI's distribution spec has it: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn check_tag(tag: &str) -> Result<(), String> {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok
        || tag.len() > 128
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(format!(
            "tag {tag:?} must be 1 to 128 letters, digits, '_', '.' or '-', not starting with \
             '.' or '-'"
        ));
    }
    Ok(())
}

/// A module name, as every other name here: `[A-Za-z0-9_-]{1,128}`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err(format!(
            "module name must be 1 to 128 characters, got {}",
            name.chars().count()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "module name {name:?} contains {bad:?}; only letters, digits, '-' and '_' are allowed"
        ));
    }
    Ok(())
}

/// `host[:port]`: DNS labels or an IPv4 address, and a port of digits.
fn check_host(registry: &str) -> Result<(), String> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("registry {registry:?}: the port must be digits"));
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!(
            "registry host {host:?} must be a DNS name or an IPv4 address"
        ));
    }
    Ok(())
}

/// A repository as OCI's distribution spec has it: lowercase path parts of letters and digits,
/// separated by `.`, `_`, `__` or runs of `-`.
fn check_repository(repository: &str) -> Result<(), String> {
    let part_ok = |part: &str| {
        let bytes = part.as_bytes();
        !bytes.is_empty()
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b))
            && !part.contains("..")
    };
    if !repository.split('/').all(part_ok) {
        return Err(format!(
            "repository {repository:?} must be lowercase letters and digits in parts separated \
             by '/', each part joined by '.', '_' or '-'"
        ));
    }
    Ok(())
}

fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    fn local(name: &str, tag: Option<&str>, digest: Option<&str>) -> ImageRef {
        ImageRef::Local(LocalRef {
            name: name.into(),
            tag: tag.map(Into::into),
            digest: digest.map(Into::into),
        })
    }

    #[test]
    fn names_tags_and_digests_of_the_module_store() {
        assert_eq!(
            ImageRef::parse("render").unwrap(),
            local("render", None, None)
        );
        assert_eq!(
            ImageRef::parse("busybox:latest").unwrap(),
            local("busybox", Some("latest"), None)
        );
        assert_eq!(
            ImageRef::parse(&format!("render:1.4@{D}")).unwrap(),
            local("render", Some("1.4"), Some(D))
        );
        assert_eq!(
            ImageRef::parse("render:1.4").unwrap().to_string(),
            "render:1.4"
        );
    }

    #[test]
    fn registry_references_as_docker_reads_them() {
        let ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com/render:1.4";
        let ImageRef::Registry(r) = ImageRef::parse(ecr).unwrap() else {
            panic!("a registry reference")
        };
        assert_eq!(r.registry, "123456789012.dkr.ecr.us-east-1.amazonaws.com");
        assert_eq!(r.repository, "render");
        assert_eq!(r.tag.as_deref(), Some("1.4"));
        let ImageRef::Registry(r) =
            ImageRef::parse(&format!("127.0.0.1:5000/team/tools/render@{D}")).unwrap()
        else {
            panic!("a registry reference")
        };
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.host(), "127.0.0.1");
        assert_eq!(r.repository, "team/tools/render");
        assert_eq!(r.tag_or_default(), "latest");
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(
            ImageRef::parse("localhost/render").unwrap().program(),
            "render"
        );
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let refused = |image: &str| ImageRef::parse(image).unwrap_err();
        assert!(refused("amazon/amazon-ecs-agent").contains("docker.io/amazon/amazon-ecs-agent"));
        assert!(refused("render@sha256:abc").contains("sha256:<64 hex digits>"));
        assert!(refused("render:.hidden").contains("tag \".hidden\""));
        assert!(refused("ren der").contains("' '"));
        assert!(refused("example.com/Render").contains("lowercase"));
        assert!(refused("example.com:http/render").contains("port"));
        assert!(refused("exa_mple.com/render").contains("DNS name"));
        assert!(refused(&"a".repeat(256)).contains("1 to 255"));
        assert!(refused("example.com/../render").contains("repository"));
    }
}
