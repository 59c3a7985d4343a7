//! Which image a container runs, and why: the choice that [`crate::Service::origin`]
//! reports.

use testcontainers::bollard::errors::Error as BollardError;
use testcontainers::bollard::Docker;

use crate::{ServiceError, ServiceKind};

/// The official images, used when present locally (or pullable).
const OFFICIAL_POSTGRES: &str = "postgres:16-alpine";
const OFFICIAL_REDIS: &str = "redis:7-alpine";

/// The images `cargo xtask images` builds from Debian packages with no registry. The
/// names are mirrored in xtask/src/images.rs: change both together.
const LOCAL_POSTGRES: &str = "keylatch/test-postgres:15-bookworm";
const LOCAL_REDIS: &str = "keylatch/test-redis:7.0-bookworm";

/// How an image must be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// An official image (or one that behaves like it): the container is told how to run
    /// the server (trust authentication, no persistence).
    Official,
    /// An image built by `cargo xtask images`: configured at build time, started with
    /// the image's own command and user.
    Local,
}

/// The image chosen for a container.
#[derive(Debug, Clone)]
pub(crate) struct Choice {
    /// The image reference, `name:tag`.
    pub reference: String,
    /// Why this image, for [`crate::Service::origin`].
    pub why: String,
    /// How to start it.
    pub flavor: Flavor,
    /// If testcontainers has to pull the image and cannot: what is missing and what to do.
    pub if_unpullable: (String, String),
}

fn official(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::Postgres => OFFICIAL_POSTGRES,
        ServiceKind::Redis => OFFICIAL_REDIS,
    }
}

fn local(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::Postgres => LOCAL_POSTGRES,
        ServiceKind::Redis => LOCAL_REDIS,
    }
}

/// Chooses the image: the override, else the official image if present, else the local
/// build if present, else the official image to be pulled.
pub(crate) async fn choose(docker: &Docker, kind: ServiceKind) -> Result<Choice, ServiceError> {
    if let Some(image) = std::env::var(kind.image_env())
        .ok()
        .map(|image| image.trim().to_owned())
        .filter(|image| !image.is_empty())
    {
        // Our own images are started as built; anything else is assumed to behave like
        // the official image it stands in for.
        let flavor = if image.starts_with("keylatch/test-") {
            Flavor::Local
        } else {
            Flavor::Official
        };
        let present = exists(docker, kind, &image).await?;
        return Ok(Choice {
            why: format!(
                "from {}{}",
                kind.image_env(),
                if present { "" } else { ", pulled" }
            ),
            if_unpullable: (
                format!(
                    "{}={image} is not present locally and could not be pulled",
                    kind.image_env()
                ),
                format!(
                    "build or load {image} into the Docker engine, or unset {} to use \
                     the default image (`cargo xtask images` builds one offline)",
                    kind.image_env()
                ),
            ),
            reference: image,
            flavor,
        });
    }

    let official = official(kind);
    let local = local(kind);
    if exists(docker, kind, official).await? {
        return Ok(Choice {
            reference: official.to_owned(),
            why: "the official image, present locally".to_owned(),
            flavor: Flavor::Official,
            if_unpullable: unpullable_default(kind),
        });
    }
    if exists(docker, kind, local).await? {
        return Ok(Choice {
            reference: local.to_owned(),
            why: format!(
                "built locally from Debian packages by `cargo xtask images`, since \
                 {official} is not present locally"
            ),
            flavor: Flavor::Local,
            if_unpullable: unpullable_default(kind),
        });
    }
    Ok(Choice {
        reference: official.to_owned(),
        why: format!("the official image, pulled: neither it nor {local} was present locally"),
        flavor: Flavor::Official,
        if_unpullable: unpullable_default(kind),
    })
}

fn unpullable_default(kind: ServiceKind) -> (String, String) {
    (
        format!(
            "neither {} nor {} is present in the Docker engine, and {} could not be pulled \
             (no registry reachable?)",
            official(kind),
            local(kind),
            official(kind)
        ),
        format!(
            "run `cargo xtask images` to build {} offline, or set {} to use an existing server",
            local(kind),
            kind.url_env()
        ),
    )
}

/// Whether the engine has the image under exactly this reference.
async fn exists(docker: &Docker, kind: ServiceKind, image: &str) -> Result<bool, ServiceError> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(err) => Err(ServiceError::docker(kind, err)),
    }
}

/// Splits `name:tag` (the tag defaults to `latest`), as `GenericImage` wants it. A colon
/// before the last slash belongs to a registry's port, not to the tag.
pub(crate) fn split_reference(reference: &str) -> Option<(&str, &str)> {
    if reference.contains('@') || reference.is_empty() {
        // `GenericImage` can only name images by tag.
        return None;
    }
    let name_start = reference.rfind('/').map_or(0, |slash| slash + 1);
    match reference[name_start..].rfind(':') {
        Some(colon) => {
            let at = name_start + colon;
            let (name, tag) = (&reference[..at], &reference[at + 1..]);
            (!name.is_empty() && !tag.is_empty()).then_some((name, tag))
        }
        None => Some((reference, "latest")),
    }
}

/// A URL without its credentials, for reports: `scheme://user:secret@host/db?options`
/// becomes `scheme://host/db?…`. Anything that does not look like a URL is hidden
/// entirely.
///
/// In doubt it shows less. The user info ends at the last `@` anywhere, since a
/// password may hold a raw `/`, `?` or `#` that a lenient parser still accepts; and
/// the query is never shown, since clients take credentials there too
/// (`?password=…`, `sslpassword`, `passfile`).
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable URL>".to_owned();
    };
    let after_user = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    match after_user.find(['?', '#']) {
        Some(end) => format!("{scheme}://{}?…", &after_user[..end]),
        None => format!("{scheme}://{after_user}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_name_and_tag() {
        assert_eq!(
            split_reference("postgres:16-alpine"),
            Some(("postgres", "16-alpine"))
        );
        assert_eq!(
            split_reference("keylatch/test-redis:7.0-bookworm"),
            Some(("keylatch/test-redis", "7.0-bookworm"))
        );
        assert_eq!(split_reference("redis"), Some(("redis", "latest")));
        assert_eq!(
            split_reference("registry.local:5000/team/pg"),
            Some(("registry.local:5000/team/pg", "latest"))
        );
        assert_eq!(
            split_reference("registry.local:5000/team/pg:15"),
            Some(("registry.local:5000/team/pg", "15"))
        );
        assert_eq!(split_reference("postgres@sha256:abc"), None);
        assert_eq!(split_reference("postgres:"), None);
        assert_eq!(split_reference(""), None);
    }

    #[test]
    fn credentials_never_reach_reports() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db.internal:5432/keys?sslmode=require"),
            "postgres://db.internal:5432/keys?…"
        );
        assert_eq!(
            redact_url("redis://:s3cret@127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        // A password holding '@', '/', '?' or '#' must not leak either, nor one passed
        // as a query parameter.
        for (url, shown) in [
            ("postgres://u:p@ss@host/db", "postgres://host/db"),
            (
                "postgres://u:s3cret/x@host:5432/db",
                "postgres://host:5432/db",
            ),
            ("postgres://u:s3c?ret@host/db", "postgres://host/db"),
            ("redis://:s3c#ret@host:6379", "redis://host:6379"),
            (
                "postgres://u@host/db?sslmode=disable&password=s3cret",
                "postgres://host/db?…",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        assert!(!redact_url("u:s3cret@host").contains("s3cret"));
    }

    #[test]
    fn local_images_are_marked_as_ours() {
        for kind in ServiceKind::ALL {
            assert!(local(kind).starts_with("keylatch/test-"));
            assert!(!official(kind).starts_with("keylatch/"));
        }
    }
}
