//! The optional TOML settings file (`--config FILE` or `JADFS_CONFIG`).
//! Each `name = value` stands for the flag `--name` of the chosen role, with
//! the precedence flags > environment > file > default: a file value only
//! fills the flag's environment variable when that variable is unset.

use std::path::Path;

use anyhow::{anyhow, bail, Context};

/// The environment variables a settings file provides for `role`, leaving
/// out those already set (as `is_set` says).
pub fn env_from_file(
    command: &clap::Command,
    role: &str,
    text: &str,
    is_set: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<(String, String)>> {
    let table: toml::Table = toml::from_str(text).context("the settings file is not valid TOML")?;
    let role = command.find_subcommand(role).ok_or_else(|| anyhow!("unknown role {role}"))?;
    let mut out = Vec::new();
    for (name, value) in table {
        let named = |a: &&clap::Arg| a.get_long() == Some(name.as_str());
        // A role's own flags, then the global ones (`--log-format`, …).
        let arg = role
            .get_arguments()
            .find(named)
            .or_else(|| command.get_arguments().find(|a| a.is_global_set() && named(a)))
            .ok_or_else(|| anyhow!("unknown setting {name:?} for `jadfs {}`", role.get_name()))?;
        let Some(env) = arg.get_env().and_then(|e| e.to_str()) else {
            bail!("setting {name:?} cannot come from a file");
        };
        if is_set(env) {
            continue;
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    toml::Value::String(s) => Ok(s),
                    other => Err(anyhow!("setting {name:?}: expected strings, found {other}")),
                })
                .collect::<anyhow::Result<Vec<_>>>()?
                .join(","),
            other => bail!("setting {name:?}: unsupported value {other}"),
        };
        out.push((env.to_string(), value));
    }
    Ok(out)
}

/// Finds `--config FILE` (or `JADFS_CONFIG`) and the role in the raw
/// arguments, before clap parses them.
pub fn locate(args: &[String]) -> Option<(String, std::path::PathBuf)> {
    let role = args.iter().skip(1).find(|a| !a.starts_with('-'))?.clone();
    let mut path = std::env::var_os("JADFS_CONFIG").map(Into::into);
    for (i, arg) in args.iter().enumerate() {
        if let Some(value) = arg.strip_prefix("--config=") {
            path = Some(value.into());
        } else if arg == "--config" {
            path = args.get(i + 1).map(Into::into);
        }
    }
    path.map(|p| (role, p))
}

pub fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading settings file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn file_values_fill_unset_environment_variables_only() {
        let text = r#"
            listen = "0.0.0.0:9000"
            chunk-size = 1048576
            data-dir = "/srv/jadfs"
        "#;
        let set = |env: &str| env == "JADFS_DATA_DIR";
        let mut env = env_from_file(&crate::Cli::command(), "server", text, set).unwrap();
        env.sort();
        assert_eq!(
            env,
            [
                ("JADFS_CHUNK_SIZE".to_string(), "1048576".to_string()),
                ("JADFS_LISTEN".to_string(), "0.0.0.0:9000".to_string())
            ]
        );
        let env =
            env_from_file(&crate::Cli::command(), "storage-node", "meta = [\"a:1\", \"b:2\"]", |_| false).unwrap();
        assert_eq!(env, [("JADFS_META".to_string(), "a:1,b:2".to_string())]);
    }

    #[test]
    fn unknown_settings_are_errors() {
        let err = env_from_file(&crate::Cli::command(), "server", "lisen = \"x\"", |_| false).unwrap_err();
        assert!(err.to_string().contains("unknown setting \"lisen\""), "{err}");
        assert!(env_from_file(&crate::Cli::command(), "server", "not toml [", |_| false).is_err());
    }

    #[test]
    fn the_file_and_role_are_found_in_the_arguments() {
        let args: Vec<String> = ["jadfs", "gateway", "--config", "/etc/jadfs.toml"].map(String::from).to_vec();
        assert_eq!(locate(&args), Some(("gateway".to_string(), "/etc/jadfs.toml".into())));
    }
}
