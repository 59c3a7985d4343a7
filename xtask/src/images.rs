//! `cargo xtask images [--force]`: builds the local test images with no registry.
//!
//! Machines here reach Debian's package archive but no container registry, so the
//! official `postgres` and `redis` images cannot be pulled. Instead we bootstrap a
//! minimal Debian bookworm root file system with `debootstrap`, install PostgreSQL and
//! Redis from Debian's packages into it, adjust their configuration for tests, and turn
//! it into images with `docker import`. One root file system yields both images: the
//! layer is identical, so Docker stores it once; only the image configuration (exposed
//! port, user, command) differs.
//!
//! The image names are mirrored in `crates/keylatch-services` (which prefers the
//! official images and falls back to these): change both together.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use crate::util;

/// The PostgreSQL test image. The `keylatch/test-` prefix and the Debian suite in the
/// tag keep anyone from mistaking it for the official `postgres` image.
pub const POSTGRES_IMAGE: &str = "keylatch/test-postgres:15-bookworm";
/// The Redis test image, named on the same principle.
pub const REDIS_IMAGE: &str = "keylatch/test-redis:7.0-bookworm";

/// The Debian suite to bootstrap.
const SUITE: &str = "bookworm";
/// The packages that make the servers; everything else comes from `minbase`.
const PACKAGES: &str = "postgresql,redis-server";
/// Optional environment override for the Debian mirror. By default debootstrap picks
/// Debian's own default mirror.
const MIRROR_ENV: &str = "KEYLATCH_DEBIAN_MIRROR";

/// PostgreSQL's cluster as Debian's packages create it at install time.
const PG_CONF_DIR: &str = "etc/postgresql/15/main";
const PG_DATA_DIR: &str = "var/lib/postgresql/15/main";

const HELP: &str = "\
cargo xtask images [--force]

Builds, with no container registry, the images the test services fall back to when the
official postgres:16-alpine / redis:7-alpine are not available locally:
    keylatch/test-postgres:15-bookworm   PostgreSQL 15, trust auth, no TLS, fsync off
    keylatch/test-redis:7.0-bookworm     Redis 7.0, all interfaces, no persistence

How: debootstrap --variant=minbase --include=postgresql,redis-server bookworm, then
docker import. Needs root, a running Docker engine, debootstrap, and access to Debian's
package archive (set KEYLATCH_DEBIAN_MIRROR to use another mirror).

    --force    Rebuild even when both images already exist.
";

/// One image made from the shared root file system.
struct ImageSpec {
    name: &'static str,
    /// `docker import --change` instructions: what a Dockerfile would have said.
    changes: &'static [&'static str],
}

const IMAGES: [ImageSpec; 2] = [
    ImageSpec {
        name: POSTGRES_IMAGE,
        changes: &[
            "EXPOSE 5432",
            "ENV PATH=/usr/lib/postgresql/15/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            // PostgreSQL refuses to run as root.
            "USER postgres",
            "WORKDIR /var/lib/postgresql",
            r#"CMD ["postgres", "-D", "/var/lib/postgresql/15/main", "-c", "config_file=/etc/postgresql/15/main/postgresql.conf"]"#,
        ],
    },
    ImageSpec {
        name: REDIS_IMAGE,
        changes: &[
            "EXPOSE 6379",
            "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            "USER redis",
            "WORKDIR /var/lib/redis",
            // Not Debian's config file: it binds 127.0.0.1 only, turns protected mode on
            // and daemonizes. All IPv4 interfaces, IPv6 when available ("-" makes that
            // bind optional), and no persistence of any kind.
            r#"CMD ["redis-server", "--bind", "* -::*", "--protected-mode", "no", "--save", "", "--appendonly", "no"]"#,
        ],
    },
];

/// Settings appended to Debian's postgresql.conf; later lines win over earlier ones.
const PG_CONF_APPEND: &str = "
# Added by `cargo xtask images` for keylatch's tests. Listen on every interface, since
# the host reaches the server through Docker's port publishing, not on the container's
# loopback. No TLS (clients use sslmode=disable). No durability: a test server's data
# may be lost in a host crash, and skipping fsync makes start-up and tests faster.
listen_addresses = '*'
ssl = off
fsync = off
synchronous_commit = off
full_page_writes = off
";

/// Rules put first in pg_hba.conf (the first matching rule wins).
const PG_HBA_PREPEND: &str = "\
# Added by `cargo xtask images`: trust every TCP connection. This is a throwaway test
# server, published only on the host's loopback by keylatch-services.
host    all    all    0.0.0.0/0    trust
host    all    all    ::/0         trust

";

/// Entry point of the subcommand.
pub fn run(args: &[String]) -> ExitCode {
    let mut force = false;
    for arg in args {
        match arg.as_str() {
            "--force" => force = true,
            "-h" | "--help" => {
                print!("{HELP}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("xtask images: unexpected argument `{other}`\n");
                eprint!("{HELP}");
                return ExitCode::from(2);
            }
        }
    }
    match build(force) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask images: {message}");
            ExitCode::FAILURE
        }
    }
}

fn build(force: bool) -> Result<(), String> {
    let started = Instant::now();
    if !cfg!(target_os = "linux") {
        return Err("building the images needs Linux (debootstrap and chroot)".into());
    }
    if !util::succeeds(Command::new("docker").arg("info")) {
        return Err(
            "the Docker engine does not answer (`docker info` failed). Start it \
                    (for example `setsid dockerd >/tmp/dockerd.log 2>&1 &`) and run this again."
                .into(),
        );
    }

    let missing: Vec<&str> = IMAGES
        .iter()
        .map(|image| image.name)
        .filter(|name| !image_exists(name))
        .collect();
    if missing.is_empty() && !force {
        println!(
            "images present: {}; nothing to build (--force rebuilds them)",
            IMAGES.map(|image| image.name).join(", ")
        );
        return Ok(());
    }
    if force {
        println!(
            "--force: rebuilding {}",
            IMAGES.map(|image| image.name).join(", ")
        );
    } else {
        println!("building because missing: {}", missing.join(", "));
    }

    if !is_root() {
        return Err("debootstrap and chroot need root: run this as root".into());
    }
    if !util::succeeds(Command::new("debootstrap").arg("--version")) {
        return Err("debootstrap is not installed: `apt-get install debootstrap`".into());
    }

    let work = util::target_dir().join("keylatch").join("images");
    fs::create_dir_all(&work).map_err(|err| format!("cannot create {}: {err}", work.display()))?;
    remove_leftovers(&work)?;
    let rootfs = work.join(format!("rootfs-{}", std::process::id()));
    // Removes the root file system however this function ends, also on error.
    let _cleanup = RootfsGuard(rootfs.clone());

    let phase = Instant::now();
    debootstrap(&work, &rootfs)?;
    println!("debootstrap took {}", util::human(phase.elapsed()));

    let phase = Instant::now();
    configure(&rootfs)?;
    println!("configuration took {}", util::human(phase.elapsed()));

    let phase = Instant::now();
    let replaced: Vec<String> = IMAGES
        .iter()
        .filter_map(|image| image_id(image.name))
        .collect();
    for image in &IMAGES {
        import(&rootfs, image)?;
    }
    println!("docker import took {}", util::human(phase.elapsed()));
    remove_replaced(&replaced);

    println!(
        "built {} in {}",
        IMAGES.map(|image| image.name).join(" and "),
        util::human(started.elapsed())
    );
    Ok(())
}

fn image_exists(name: &str) -> bool {
    util::succeeds(Command::new("docker").args(["image", "inspect", name]))
}

/// The image's id, when the engine has it.
fn image_id(name: &str) -> Option<String> {
    let output = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", name])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !id.is_empty()).then_some(id)
}

/// Removes the images a rebuild replaced: each rebuild makes a new layer of about
/// 500 MB, and the old ones, left without a tag, would pile up. An old image that a
/// container still uses stays, and is named so that it can be removed later.
fn remove_replaced(replaced: &[String]) {
    let current: Vec<String> = IMAGES
        .iter()
        .filter_map(|image| image_id(image.name))
        .collect();
    for id in replaced.iter().filter(|id| !current.contains(id)) {
        if util::succeeds(Command::new("docker").args(["image", "rm", id])) {
            println!("removed the replaced image {id}");
        } else {
            println!("kept the replaced image {id} (a container may still use it)");
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| output.status.success() && output.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

fn debootstrap(work: &Path, rootfs: &Path) -> Result<(), String> {
    let log_path = work.join(format!("debootstrap-{}.log", std::process::id()));
    let log = fs::File::create(&log_path)
        .map_err(|err| format!("cannot create {}: {err}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|err| format!("cannot open {} twice: {err}", log_path.display()))?;

    let mut command = Command::new("debootstrap");
    command
        .arg("--variant=minbase")
        .arg(format!("--include={PACKAGES}"))
        .arg(SUITE)
        .arg(rootfs);
    if let Some(mirror) = std::env::var_os(MIRROR_ENV).filter(|mirror| !mirror.is_empty()) {
        command.arg(mirror);
    }
    // The PostgreSQL cluster is created at install time, with the locale of this
    // environment: pin it, so the image does not depend on the host's settings.
    command
        .env("LC_ALL", "C.UTF-8")
        .env("LANG", "C.UTF-8")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);

    println!("$ {}", util::display(&command));
    println!("  (about a minute; output in {})", log_path.display());
    let status = command
        .status()
        .map_err(|err| format!("could not start debootstrap: {err}"))?;
    if status.success() {
        let _ = fs::remove_file(&log_path);
        return Ok(());
    }
    eprintln!("last lines of {}:", log_path.display());
    for line in last_lines(&log_path, 30) {
        eprintln!("    {line}");
    }
    Err(format!(
        "debootstrap failed ({status}); full output in {}",
        log_path.display()
    ))
}

fn last_lines(path: &Path, count: usize) -> Vec<String> {
    let Ok(file) = fs::File::open(path) else {
        return Vec::new();
    };
    let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    lines[lines.len().saturating_sub(count)..].to_vec()
}

fn configure(rootfs: &Path) -> Result<(), String> {
    let pg_conf = rootfs.join(PG_CONF_DIR).join("postgresql.conf");
    let pg_hba = rootfs.join(PG_CONF_DIR).join("pg_hba.conf");
    // Fail with a clear message if the packages did not leave what we rely on.
    for required in [
        pg_conf.clone(),
        pg_hba.clone(),
        rootfs.join(PG_DATA_DIR).join("PG_VERSION"),
        rootfs.join("usr/lib/postgresql/15/bin/postgres"),
        rootfs.join("usr/bin/redis-server"),
    ] {
        if !required.exists() {
            return Err(format!(
                "{} is missing after debootstrap: the postgresql or redis-server package \
                 did not install as expected",
                required.display()
            ));
        }
    }

    println!("configuring PostgreSQL: listen on all interfaces, trust, no TLS, fsync off");
    let mut conf = fs::OpenOptions::new()
        .append(true)
        .open(&pg_conf)
        .map_err(|err| format!("cannot open {}: {err}", pg_conf.display()))?;
    conf.write_all(PG_CONF_APPEND.as_bytes())
        .map_err(|err| format!("cannot write {}: {err}", pg_conf.display()))?;

    let hba = fs::read_to_string(&pg_hba)
        .map_err(|err| format!("cannot read {}: {err}", pg_hba.display()))?;
    fs::write(&pg_hba, format!("{PG_HBA_PREPEND}{hba}"))
        .map_err(|err| format!("cannot write {}: {err}", pg_hba.display()))?;

    // The socket and pid directory is made by systemd at boot on a real system; a
    // container has no boot, so the image must carry it. The chroot makes `postgres`
    // resolve against the image's users, not the host's.
    let mut mkdir = Command::new("chroot");
    mkdir.arg(rootfs).args([
        "install",
        "-d",
        "-o",
        "postgres",
        "-g",
        "postgres",
        "-m",
        "2775",
        "/var/run/postgresql",
    ]);
    let status = util::run_visible(&mut mkdir)?;
    if !status.success() {
        return Err(format!("`{}` failed ({status})", util::display(&mkdir)));
    }

    // Package caches and documentation only make the import slower.
    for dir in [
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
    ] {
        empty_dir(&rootfs.join(dir))?;
    }
    Ok(())
}

/// Removes what a directory holds but keeps the directory (apt expects its own).
fn empty_dir(dir: &Path) -> Result<(), String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry
            .map_err(|err| format!("cannot list {}: {err}", dir.display()))?
            .path();
        let removed = if path.is_dir() && !path.is_symlink() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(|err| format!("cannot remove {}: {err}", path.display()))?;
    }
    Ok(())
}

fn import(rootfs: &Path, image: &ImageSpec) -> Result<(), String> {
    // Numeric owners: the files must keep the image's uids (postgres, redis), which
    // need not exist, or match, on the host.
    let mut tar = Command::new("tar");
    tar.arg("--numeric-owner")
        .arg("-C")
        .arg(rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped());
    let mut import = Command::new("docker");
    import.arg("import");
    for change in image.changes {
        import.args(["--change", change]);
    }
    import.args(["-", image.name]).stdout(Stdio::null());

    println!("$ {} | {}", util::display(&tar), util::display(&import));
    let mut tar_child = tar
        .spawn()
        .map_err(|err| format!("could not start tar: {err}"))?;
    let Some(tar_out) = tar_child.stdout.take() else {
        let _ = tar_child.kill();
        let _ = tar_child.wait();
        return Err("tar's output pipe is missing".into());
    };
    let import_status = import.stdin(tar_out).status();
    // Wait for tar in every case so no zombie is left, then judge both.
    let tar_status = tar_child
        .wait()
        .map_err(|err| format!("waiting for tar failed: {err}"))?;
    let import_status = import_status.map_err(|err| format!("could not start docker: {err}"))?;
    if !tar_status.success() {
        return Err(format!("tar of {} failed ({tar_status})", rootfs.display()));
    }
    if !import_status.success() {
        return Err(format!(
            "docker import of {} failed ({import_status})",
            image.name
        ));
    }
    println!("imported {}", image.name);
    Ok(())
}

/// Removes the root file system when dropped, so a failed build leaves nothing behind.
struct RootfsGuard(PathBuf);

impl Drop for RootfsGuard {
    fn drop(&mut self) {
        if let Err(message) = remove_rootfs(&self.0) {
            eprintln!("xtask images: warning: {message}");
        }
    }
}

/// Removes root file systems left by earlier runs that were interrupted (their process
/// is gone). Those of a run still going, from another shell, are left alone.
fn remove_leftovers(work: &Path) -> Result<(), String> {
    let entries =
        fs::read_dir(work).map_err(|err| format!("cannot list {}: {err}", work.display()))?;
    for entry in entries.map_while(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|name| name.strip_prefix("rootfs-")) else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        println!(
            "removing {} left by an interrupted run",
            entry.path().display()
        );
        remove_rootfs(&entry.path())?;
    }
    Ok(())
}

/// Removes a root file system safely: first unmounts anything debootstrap left mounted
/// inside it (an interrupted debootstrap can leave /proc or /sys mounted), and removes
/// with `--one-file-system`, so that nothing outside it can ever be deleted.
fn remove_rootfs(rootfs: &Path) -> Result<(), String> {
    if !rootfs.exists() {
        return Ok(());
    }
    let canonical = rootfs
        .canonicalize()
        .map_err(|err| format!("cannot resolve {}: {err}", rootfs.display()))?;
    let mut mounts = mounts_below(&canonical)?;
    // Deepest first, so that nested mounts come off before their parents.
    mounts.sort_by_key(|mount| std::cmp::Reverse(mount.len()));
    for mount in &mounts {
        let mut umount = Command::new("umount");
        umount.args(["--lazy", mount]);
        let status = util::run_visible(&mut umount)?;
        if !status.success() {
            return Err(format!(
                "cannot unmount {mount}; not removing {}",
                rootfs.display()
            ));
        }
    }
    let mut rm = Command::new("rm");
    rm.args(["-rf", "--one-file-system"]).arg(&canonical);
    let status = rm
        .status()
        .map_err(|err| format!("could not start rm: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", util::display(&rm)))
    }
}

/// Mount points strictly inside `dir`, from /proc/self/mounts.
fn mounts_below(dir: &Path) -> Result<Vec<String>, String> {
    let table = fs::read_to_string("/proc/self/mounts")
        .map_err(|err| format!("cannot read /proc/self/mounts: {err}"))?;
    let prefix = format!("{}/", dir.display());
    Ok(table
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(unescape_mount_path)
        .filter(|mount| mount.starts_with(&prefix))
        .collect())
}

/// The kernel writes space, tab, newline and backslash in mount paths as octal escapes.
fn unescape_mount_path(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let digits = rest.get(at + 1..at + 4);
        match digits.and_then(|digits| u8::from_str_radix(digits, 8).ok()) {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/a\040b/c\134d"), r"/a b/c\d");
        assert_eq!(unescape_mount_path("/plain/path"), "/plain/path");
        assert_eq!(unescape_mount_path(r"/odd\9"), r"/odd\9");
    }

    #[test]
    fn image_names_cannot_pass_for_official_ones() {
        for image in &IMAGES {
            assert!(image.name.starts_with("keylatch/test-"), "{}", image.name);
        }
    }
}
