//! Gets each function's deployable `bootstrap`: built and zipped by
//! `cargo lambda build --release --output-format zip` (what the SAM template deploys), or,
//! for cheap runs, a host build the bench zips itself. Either way the binary that is
//! started is the one extracted from the zip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the binaries come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// `cargo lambda build --release --output-format zip` (x86_64, zig as the linker).
    CargoLambda,
    /// The zips `cargo lambda build` left in `target/lambda/` earlier.
    Prebuilt,
    /// `cargo build --release` for the host, zipped by the bench.
    HostRelease,
    /// `cargo build` (debug) for the host, zipped by the bench: exercises the path only.
    HostDebug,
}

impl Builder {
    pub fn parse(s: &str) -> anyhow::Result<Builder> {
        Ok(match s {
            "lambda" | "cargo-lambda" => Builder::CargoLambda,
            "prebuilt" => Builder::Prebuilt,
            "host-release" | "release" => Builder::HostRelease,
            "host-debug" | "debug" => Builder::HostDebug,
            other => anyhow::bail!(
                "--coldstart-build {other}: expected lambda, prebuilt, host-release or host-debug"
            ),
        })
    }

    /// How the figures should be read.
    pub fn label(self) -> &'static str {
        match self {
            Builder::CargoLambda | Builder::Prebuilt => {
                "cargo lambda build --release --output-format zip, x86_64"
            }
            Builder::HostRelease => "host cargo build --release zipped by the bench, x86_64",
            Builder::HostDebug => "host debug build zipped by the bench: not the deployable size",
        }
    }

    /// Whether the zip is the deployable artifact (so its size counts against the target).
    pub fn deployable(self) -> bool {
        matches!(self, Builder::CargoLambda | Builder::Prebuilt)
    }

    /// Whether the code is optimized as deployed (so init times count against the target).
    pub fn optimized(self) -> bool {
        self != Builder::HostDebug
    }
}

/// One function ready to start.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub function: String,
    pub zip_bytes: u64,
    /// The `bootstrap` extracted from the zip (executable).
    pub bin: PathBuf,
}

/// What building took.
#[derive(Debug, Clone)]
pub struct Built {
    pub artifacts: Vec<Artifact>,
    /// `None` when nothing was built.
    pub build_time: Option<Duration>,
    /// What was built, for the build time's row.
    pub what: String,
}

/// The workspace this bench belongs to (tests/bench/../..).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The workspace's target directory as cargo sees it (honours `CARGO_TARGET_DIR`).
pub fn target_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let out = Command::new(cargo())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(out.status.success(), "cargo metadata failed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("cargo metadata gave no target_directory"))
}

const INSTALL_HINT: &str =
    "install it with `python3 -m venv .venv && .venv/bin/pip install cargo-lambda` \
     (it brings zig) and put .venv/bin on PATH; scripts/bench.sh does both";

/// Fails with the install step when `cargo lambda` is missing.
pub fn check_cargo_lambda(root: &Path) -> anyhow::Result<String> {
    let out = Command::new(cargo())
        .args(["lambda", "--version"])
        .current_dir(root)
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
        Ok(o) => anyhow::bail!(
            "`cargo lambda` is not available ({}): {INSTALL_HINT}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output")
                .trim()
        ),
        Err(e) => anyhow::bail!("cannot run cargo ({e}): {INSTALL_HINT}"),
    }
}

fn package_args(functions: &[String]) -> Vec<String> {
    // `--bin` too: the importer package also holds `import-bench`.
    let mut args = vec![];
    for f in functions {
        args.extend(["-p".to_owned(), f.clone()]);
    }
    for f in functions {
        args.extend(["--bin".to_owned(), f.clone()]);
    }
    args
}

fn run_build(root: &Path, args: &[String]) -> anyhow::Result<Duration> {
    let shown = format!("cargo {}", args.join(" "));
    eprintln!("   building: {shown}");
    let started = Instant::now();
    let status = Command::new(cargo())
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()?;
    anyhow::ensure!(
        status.success(),
        "`{shown}` failed ({status}); see its output above"
    );
    Ok(started.elapsed())
}

/// Builds (or finds) each function's zip and extracts its `bootstrap` under `scratch`.
/// `lambda_dir` replaces `<target>/lambda` as the place prebuilt zips are read from.
pub fn prepare(
    builder: Builder,
    functions: &[String],
    lambda_dir: Option<&Path>,
    scratch: &Path,
) -> anyhow::Result<Built> {
    let root = workspace_root();
    let target = target_dir(&root)?;
    let lambda_dir = lambda_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| target.join("lambda"));
    let mut build_time = None;
    let what;
    let zips: Vec<(String, PathBuf)> = match builder {
        Builder::CargoLambda | Builder::Prebuilt => {
            if builder == Builder::CargoLambda {
                let version = check_cargo_lambda(&root)?;
                eprintln!("   {version}");
                let mut args: Vec<String> =
                    ["lambda", "build", "--release", "--output-format", "zip"]
                        .map(String::from)
                        .to_vec();
                args.extend(package_args(functions));
                what = format!(
                    "cargo lambda build --release --output-format zip, {}",
                    count(functions)
                );
                build_time = Some(run_build(&root, &args)?);
            } else {
                what = format!("{}/*/bootstrap.zip built earlier", lambda_dir.display());
            }
            functions
                .iter()
                .map(|f| {
                    let zip = lambda_dir.join(f).join("bootstrap.zip");
                    anyhow::ensure!(
                        zip.is_file(),
                        "{} is missing: build it with `cargo lambda build --release --output-format zip -p {f}` \
                         or drop `--coldstart-build prebuilt`",
                        zip.display()
                    );
                    Ok((f.clone(), zip))
                })
                .collect::<anyhow::Result<_>>()?
        }
        Builder::HostRelease | Builder::HostDebug => {
            let mut args = vec!["build".to_owned()];
            let profile = if builder == Builder::HostRelease {
                args.push("--release".to_owned());
                "release"
            } else {
                "debug"
            };
            args.extend(package_args(functions));
            what = format!(
                "cargo build{}, {}",
                if profile == "release" {
                    " --release"
                } else {
                    " (debug)"
                },
                count(functions)
            );
            build_time = Some(run_build(&root, &args)?);
            functions
                .iter()
                .map(|f| {
                    let bin = target.join(profile).join(f);
                    let zip = scratch.join(f).join("bootstrap.zip");
                    std::fs::create_dir_all(zip.parent().unwrap())?;
                    let level = if builder == Builder::HostRelease {
                        "6"
                    } else {
                        "1"
                    };
                    python_zip(&["zip", path_str(&bin)?, path_str(&zip)?, level])?;
                    Ok((f.clone(), zip))
                })
                .collect::<anyhow::Result<_>>()?
        }
    };
    let mut artifacts = vec![];
    for (function, zip) in zips {
        let dir = scratch.join(&function);
        std::fs::create_dir_all(&dir)?;
        let bin = dir.join("bootstrap");
        python_zip(&["unzip", path_str(&zip)?, path_str(&bin)?])?;
        artifacts.push(Artifact {
            zip_bytes: std::fs::metadata(&zip)?.len(),
            function,
            bin,
        });
    }
    Ok(Built {
        artifacts,
        build_time,
        what,
    })
}

fn count(functions: &[String]) -> String {
    match functions.len() {
        1 => "1 function".to_owned(),
        n => format!("{n} functions"),
    }
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", p.display()))
}

/// Python's zipfile (always there with python3; `zip`/`unzip` may not be): `zip BIN ZIP
/// LEVEL` stores BIN as an executable `bootstrap` entry, deflated (level 6 is the usual
/// default, as cargo lambda's; 1 is quick for debug binaries whose size means nothing);
/// `unzip ZIP BIN` extracts the `bootstrap` entry to BIN, executable.
const ZIP_PY: &str = r#"
import os, sys, zipfile
mode, src, dst = sys.argv[1:4]
if mode == "zip":
    info = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
    info.external_attr = 0o100755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(src, "rb") as f, zipfile.ZipFile(dst, "w") as z:
        z.writestr(info, f.read(), compresslevel=int(sys.argv[4]))
else:
    with zipfile.ZipFile(src) as z:
        names = z.namelist()
        if "bootstrap" not in names:
            sys.exit(f"{src} has no bootstrap entry (it has {names})")
        data = z.read("bootstrap")
    with open(dst, "wb") as f:
        f.write(data)
    os.chmod(dst, 0o755)
"#;

fn python_zip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(ZIP_PY)
        .args(args)
        .output()
        .map_err(|e| anyhow::anyhow!("python3 is needed to zip/unzip bootstrap files: {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "python3 zipfile {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}
