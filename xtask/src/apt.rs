//! Downloading Debian packages without touching the machine's apt setup: a
//! private sources list, state and cache per suite under our cache folder.
//! Packages are only downloaded and unpacked (dpkg-deb -x), never installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cache_dir;
use crate::cmd::{find_file, output, run, say, sha256};

pub struct Apt {
    root: PathBuf,
}

impl Apt {
    /// An apt view of Debian `suite` (main), with fresh package lists.
    pub fn suite(suite: &str) -> Result<Apt> {
        let root = cache_dir().join("apt").join(suite);
        for sub in ["state/lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        std::fs::write(
            root.join("sources.list"),
            format!("deb http://deb.debian.org/debian {suite} main\n"),
        )?;
        let apt = Apt { root };
        run(apt.command("apt-get").arg("update"))
            .with_context(|| format!("reading Debian {suite}'s package lists"))?;
        Ok(apt)
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        for (key, value) in [
            ("Dir::Etc::SourceList", self.root.join("sources.list")),
            ("Dir::Etc::SourceParts", PathBuf::from("/nonexistent")),
            ("Dir::State", self.root.join("state")),
            ("Dir::Cache", self.root.join("cache")),
        ] {
            command.arg("-o").arg(format!("{key}={}", value.display()));
        }
        command
    }

    /// Names of the packages whose name matches `pattern` (a regex).
    pub fn search_names(&self, pattern: &str) -> Result<Vec<String>> {
        let list = output(
            self.command("apt-cache")
                .args(["search", "--names-only", pattern]),
        )?;
        Ok(list
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect())
    }

    /// Downloads `package` (`name` or `name=version`) into `dir`, checks its
    /// SHA-256 when one is given, and returns the `.deb`.
    pub fn download(&self, package: &str, dir: &Path, sha256_hex: Option<&str>) -> Result<PathBuf> {
        say(format!("downloading {package}"));
        std::fs::create_dir_all(dir)?;
        run(self
            .command("apt-get")
            .args(["download", package])
            .current_dir(dir))?;
        let name = package.split('=').next().unwrap_or(package);
        let deb = find_file(dir, &format!("{name}_"), ".deb").with_context(|| {
            format!(
                "apt-get download {package} left no .deb in {}",
                dir.display()
            )
        })?;
        if let Some(expected) = sha256_hex {
            let actual = sha256(&deb)?;
            if actual != expected {
                let _ = std::fs::remove_file(&deb);
                bail!(
                    "{} has SHA-256 {actual}, expected {expected}",
                    deb.display()
                );
            }
        }
        Ok(deb)
    }
}
