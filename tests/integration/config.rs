//! Configuration as a user meets it: flags, `STEWARD_*` variables and `steward.toml`, and exit
//! code 2 with a message that says what to fix.

use std::process::Output;

use tokio::process::Command;

async fn steward(
    args: &[&str],
    envs: &[(&str, &str)],
    dir: &std::path::Path,
) -> anyhow::Result<Output> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_steward"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("STEWARD_CONFIG")
        .env_remove("STEWARD_DATABASE_URL");
    for (key, value) in envs {
        command.env(key, value);
    }
    Ok(tokio::time::timeout(std::time::Duration::from_secs(30), command.output()).await??)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn bad_configuration_exits_2_and_says_what_to_fix() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Missing directories are created, but not under a file.
    std::fs::write(dir.path().join("a-file"), "")?;
    let under_a_file = format!("sqlite://{}/a-file/x/steward.db", dir.path().display());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["serve", "--database", "mysql://localhost/db"],
            "Use sqlite://PATH",
        ),
        (
            vec!["serve", "--database", &under_a_file],
            "cannot create the directory",
        ),
        (vec!["serve", "--listen", "not-an-address"], "invalid value"),
        (
            vec!["serve", "--session-timeout", "forever"],
            "invalid value",
        ),
        (
            vec!["serve", "--hangup-grace", "0s"],
            "hang-up grace must be longer than zero",
        ),
        (vec!["serve", "--hangup-grace", "2h"], "at most 1h"),
        // `serve` waits for an unreachable PostgreSQL (journal::kill_9_and_restart_while_the_
        // database_is_unreachable); a one-shot command says what to check and exits.
        (
            vec![
                "sessions",
                "list",
                "--database",
                "postgres://nobody@127.0.0.1:1/none",
            ],
            "PostgreSQL is running",
        ),
        (
            vec!["sessions", "list", "--status", "bogus"],
            "possible values",
        ),
    ];
    for (args, hint) in cases {
        let output = steward(&args, &[], dir.path()).await?;
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(hint),
            "{args:?}: expected {hint:?} in: {}",
            stderr(&output)
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_taken_port_exits_2() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?.to_string();
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    let output = steward(
        &["serve", "--listen", &addr, "--database", &db],
        &[],
        dir.path(),
    )
    .await?;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot listen on"),
        "{}",
        stderr(&output)
    );
    Ok(())
}

#[tokio::test]
async fn the_config_file_and_environment_are_read_in_order() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let from_file = dir.path().join("from-file.db");
    let from_env = dir.path().join("from-env.db");
    // The user's config file: `$XDG_CONFIG_HOME/steward/steward.toml`.
    let xdg = dir.path().to_string_lossy().to_string();
    let xdg_env = [("XDG_CONFIG_HOME", xdg.as_str())];
    std::fs::create_dir_all(dir.path().join("steward"))?;
    let file = dir.path().join("steward").join("steward.toml");
    std::fs::write(
        &file,
        format!("database = \"sqlite://{}\"\n", from_file.display()),
    )?;

    // The file applies when nothing else is given (every command names its database)...
    let output = steward(&["pricing", "list"], &xdg_env, dir.path()).await?;
    assert!(
        stderr(&output).contains(&format!("database sqlite://{}", from_file.display())),
        "steward.toml's database was not used: {}",
        stderr(&output)
    );

    // ...the environment wins over the file...
    let env_url = format!("sqlite://{}", from_env.display());
    let output = steward(
        &["pricing", "list"],
        &[("STEWARD_DATABASE_URL", &env_url), xdg_env[0]],
        dir.path(),
    )
    .await?;
    assert!(
        stderr(&output).contains(&format!("database sqlite://{}", from_env.display())),
        "STEWARD_DATABASE_URL was not used: {}",
        stderr(&output)
    );

    // ...and a typo in the file is an error naming the key.
    std::fs::write(&file, "databse = \"sqlite://x.db\"\n")?;
    let output = steward(&["pricing", "list"], &xdg_env, dir.path()).await?;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("databse"), "{}", stderr(&output));
    Ok(())
}

/// On/off flags read their environment variable as people write it: `1`, `yes` or `on`, not
/// only `true`. (Both flags on, no upstream: the insecure-listen check passes and the no-board
/// one, after it, refuses with its own message.)
#[tokio::test]
async fn on_off_environment_variables_take_1_yes_and_on() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let database = format!("sqlite://{}/steward.db", dir.path().display());
    for truthy in ["1", "yes", "on", "true"] {
        let output = steward(
            &["serve", "--listen", "0.0.0.0:0", "--database", &database],
            &[
                ("STEWARD_NO_BOARD", truthy),
                ("STEWARD_INSECURE_NO_AUTH", truthy),
            ],
            dir.path(),
        )
        .await?;
        let stderr = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{truthy}: {stderr}");
        assert!(
            stderr.contains("--no-board serves only upstreams"),
            "{truthy}: {stderr}"
        );
    }
    Ok(())
}
