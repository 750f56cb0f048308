//! The layering order, with the environment isolated by `figment::Jail` (which also serializes
//! the tests that change it).

#![allow(clippy::unwrap_used)]
// `Jail` closures return figment's own (large) error type; that is its API, not our choice.
#![allow(clippy::result_large_err)]

use figment::Jail;

use super::*;

fn load(file: Option<&str>, flags: &Flags) -> Result<(Config, Figment), String> {
    Config::load(file.map(Path::new), flags).map_err(|e| format!("{e:#}"))
}

#[test]
fn defaults_are_the_crates_own() {
    Jail::expect_with(|_| {
        let (c, f) = load(None, &Flags::default())?;
        let server = logbook_server::Settings::new("x".into());
        assert_eq!(c.data_dir, PathBuf::from("logbook-data"));
        assert_eq!(c.listen, server.listen);
        assert_eq!(c.origin_prefix, server.origin_prefix);
        assert_eq!(c.self_check_interval, server.self_check_interval.as_secs());
        assert_eq!((c.sign_in_max_failures, c.sign_in_window_minutes), (30, 15));
        assert_eq!(c.smtp_port, 25);
        assert_eq!(source_of(&f, "data_dir"), "default");
        assert_eq!(c.signing_key().path(), Path::new("logbook-data/checkpoint-signing.key"));
        Ok(())
    });
}

#[test]
fn file_then_env_then_flags() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "logbook.toml",
            r#"
            data_dir = "from-file"
            origin_prefix = "file.example"
            listen = "127.0.0.1:1111"
            smtp_port = 2525
            signing_key_file = "file.key"
            "#,
        )?;
        jail.set_env("LOGBOOK_ORIGIN_PREFIX", "env.example");
        jail.set_env("LOGBOOK_LISTEN", "127.0.0.1:2222");
        jail.set_env("LOGBOOK_SMTP_PORT", "587");
        let flags = Flags { listen: Some("127.0.0.1:3333".parse().unwrap()), ..Flags::default() };
        let (c, f) = load(Some("logbook.toml"), &flags)?;
        assert_eq!(c.data_dir, PathBuf::from("from-file"));
        assert_eq!(c.origin_prefix, "env.example");
        assert_eq!(c.listen.port(), 3333);
        assert_eq!(c.smtp_port, 587, "numbers from the environment are converted");
        assert_eq!(source_of(&f, "data_dir"), "file logbook.toml");
        assert_eq!(source_of(&f, "origin_prefix"), "environment variable LOGBOOK_ORIGIN_PREFIX");
        assert_eq!(source_of(&f, "listen"), "flag --listen");
        assert_eq!(source_of(&f, "self_check_interval"), "default");
        // Derived settings follow the same values.
        let s = c.server_settings();
        assert_eq!((s.listen.port(), s.origin_prefix.as_str()), (3333, "env.example"));
        assert_eq!(s.signing_key_file, Some(PathBuf::from("file.key")));
        assert_eq!(c.log_config().origin_prefix, "env.example");
        assert_eq!(c.signing_key().path(), Path::new("file.key"));
        Ok(())
    });
}

#[test]
fn secrets_come_from_the_environment_or_files_and_the_variable_wins() {
    Jail::expect_with(|jail| {
        jail.create_file("smtp.secret", "0123456789\n")?;
        jail.create_file("db.secret", "postgres://app:s3cret@db/logbook\n")?;
        jail.set_env("LOGBOOK_SMTP_PASSWORD_FILE", "smtp.secret");
        jail.set_env("LOGBOOK_DATABASE_URL_FILE", "db.secret");
        let (c, f) = load(None, &Flags::default())?;
        assert_eq!(c.smtp_password, Some(Secret("0123456789".into())), "a password of digits stays a string");
        assert_eq!(c.database_url.as_ref().map(DatabaseUrl::expose), Some("postgres://app:s3cret@db/logbook"));
        assert_eq!(source_of(&f, "smtp_password"), "environment variable LOGBOOK_SMTP_PASSWORD_FILE");
        jail.set_env("LOGBOOK_SMTP_PASSWORD", "direct");
        let (c, f) = load(None, &Flags::default())?;
        assert_eq!(c.smtp_password, Some(Secret("direct".into())));
        assert_eq!(source_of(&f, "smtp_password"), "environment variable LOGBOOK_SMTP_PASSWORD");
        Ok(())
    });
}

#[test]
fn the_rendered_configuration_never_shows_a_secret() {
    Jail::expect_with(|jail| {
        jail.set_env("LOGBOOK_DATABASE_URL", "postgres://app:s3cret@db:5432/logbook?password=s3cret2");
        jail.set_env("LOGBOOK_SMTP_PASSWORD", "hunter2");
        jail.set_env("LOGBOOK_SMTP_HOST", "mail.example");
        let (c, f) = load(None, &Flags::default())?;
        let shown = c.render(&f);
        for secret in ["s3cret", "hunter2"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("database_url = \"postgres://app:<redacted>@db:5432/logbook?password=<redacted>\""),
            "{shown}"
        );
        assert!(
            shown.contains("smtp_password = \"<redacted>\"  # environment variable LOGBOOK_SMTP_PASSWORD"),
            "{shown}"
        );
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{c:?}").contains("s3cret"));
        // What `logbook config` prints is a configuration file that loads to the same values
        // (secrets aside).
        jail.create_file("again.toml", &shown.replace("<redacted>", "x"))?;
        jail.clear_env();
        let (again, _) = load(Some("again.toml"), &Flags::default())?;
        assert_eq!(again.smtp_host, c.smtp_host);
        assert_eq!(again.listen, c.listen);
        Ok(())
    });
}

#[test]
fn unknown_keys_and_bad_values_are_errors_that_name_their_source() {
    Jail::expect_with(|jail| {
        jail.create_file("typo.toml", "data_dri = \"x\"\n")?;
        let e = load(Some("typo.toml"), &Flags::default()).unwrap_err();
        assert!(e.contains("data_dri") && e.contains("typo.toml"), "{e}");
        let e = load(Some("missing.toml"), &Flags::default()).unwrap_err();
        assert!(e.contains("missing.toml"), "{e}");
        jail.set_env("LOGBOOK_SMTP_PORT", "not a port");
        let e = load(None, &Flags::default()).unwrap_err();
        assert!(e.contains("smtp_port") && e.contains("LOGBOOK_SMTP_PORT"), "{e}");
        jail.set_env("LOGBOOK_SMTP_PORT", "25");
        jail.set_env("LOGBOOK_SIGN_IN_WINDOW_MINUTES", "0");
        let e = load(None, &Flags::default()).unwrap_err();
        assert!(e.contains("1 to 1440"), "{e}");
        // Variables that are not settings (tests', migrate-store's) are no error.
        jail.set_env("LOGBOOK_SIGN_IN_WINDOW_MINUTES", "15");
        jail.set_env("LOGBOOK_MIGRATE_FROM", "sqlite://x");
        jail.set_env("LOGBOOK_TEST_POSTGRES_URL", "postgres://x");
        load(None, &Flags::default())?;
        Ok(())
    });
}

#[test]
fn database_urls_never_show_their_password_in_debug() {
    let url: DatabaseUrl = "postgres://app:s3cret@db:5432/logbook".parse().unwrap();
    let loc = StoreLocation { data_dir: "d".into(), database_url: Some(url.clone()) };
    let shown = format!("{loc:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("postgres://<redacted>"), "{shown}");
    assert_eq!(url.redacted(), "postgres://app:<redacted>@db:5432/logbook");
    let plain: DatabaseUrl = "postgres://app@db/logbook".parse().unwrap();
    assert_eq!(plain.redacted(), "postgres://app@db/logbook");
}

#[test]
fn transport_settings_from_flag_env_and_file() {
    Jail::expect_with(|jail| {
        let (c, _) = load(None, &Flags::default())?;
        let s = c.server_settings();
        assert!(s.trusted_proxies.is_empty(), "no proxy is trusted unless configured");
        assert_eq!((s.max_connections_per_address, s.export_max_concurrent, s.export_max_per_user), (64, 4, 1));
        assert_eq!(s.query_timeout, Duration::from_secs(30));
        assert_eq!(c.smtp_tls, SmtpTls::Starttls);

        jail.create_file(
            "logbook.toml",
            r#"
            trusted_proxies = ["10.0.0.0/8", "192.0.2.7"]
            forwarded_header = "forwarded"
            query_timeout = 5
            "#,
        )?;
        jail.set_env("LOGBOOK_MAX_CONNECTIONS_PER_ADDRESS", "8");
        jail.set_env("LOGBOOK_EXPORT_MAX_CONCURRENT", "3");
        let (c, f) = load(Some("logbook.toml"), &Flags::default())?;
        let s = c.server_settings();
        assert_eq!(s.trusted_proxies.to_string(), "10.0.0.0/8,192.0.2.7/32");
        assert_eq!(s.forwarded_header, ForwardedHeader::Forwarded);
        assert_eq!((s.max_connections_per_address, s.export_max_concurrent), (8, 3));
        assert_eq!(s.query_timeout, Duration::from_secs(5));
        assert!(c.render(&f).contains("trusted_proxies = \"10.0.0.0/8,192.0.2.7/32\"  # file logbook.toml"));

        jail.set_env("LOGBOOK_TRUSTED_PROXIES", "172.16.0.0/12, 2001:db8::/32");
        let flags = Flags { export_max_per_user: Some(2), ..Flags::default() };
        let (c, f) = load(Some("logbook.toml"), &flags)?;
        assert_eq!(c.trusted_proxies.to_string(), "172.16.0.0/12,2001:db8::/32");
        assert_eq!(c.export_max_per_user, 2);
        assert_eq!(source_of(&f, "trusted_proxies"), "environment variable LOGBOOK_TRUSTED_PROXIES");

        jail.set_env("LOGBOOK_TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal");
        let e = load(None, &Flags::default()).unwrap_err();
        assert!(e.contains("\"proxy.internal\" is not an IP address or a CIDR block"), "{e}");
        Ok(())
    });
}

#[test]
fn smtp_credentials_are_refused_without_tls() {
    Jail::expect_with(|jail| {
        jail.set_env("LOGBOOK_SMTP_HOST", "mail.example.com");
        jail.set_env("LOGBOOK_SMTP_USERNAME", "logbook");
        jail.set_env("LOGBOOK_SMTP_PASSWORD", "relay-secret-7");
        let (c, _) = load(None, &Flags::default())?;
        assert_eq!(c.server_settings().smtp.unwrap().tls, SmtpTls::Starttls, "STARTTLS by default");

        jail.set_env("LOGBOOK_SMTP_TLS", "none");
        let e = load(None, &Flags::default()).unwrap_err();
        assert!(e.contains("need an encrypted connection"), "{e}");
        assert!(!e.contains("relay-secret-7"), "{e}");

        // A plain local relay without credentials is allowed, when asked for.
        jail.set_env("LOGBOOK_SMTP_USERNAME", "");
        jail.set_env("LOGBOOK_SMTP_PASSWORD", "");
        let (c, _) = load(None, &Flags::default())?;
        assert_eq!(c.server_settings().smtp.unwrap().tls, SmtpTls::None);

        jail.set_env("LOGBOOK_SMTP_TLS", "sometimes");
        assert!(load(None, &Flags::default()).is_err());
        Ok(())
    });
}

fn witness_key(name: &str) -> String {
    let random = logbook_core::SeededRandom::new(name.len() as u64);
    logbook_integrity::cosignature::CosignatureSigner::generate(&random, name).unwrap().verifier_key().to_owned()
}

#[test]
fn witnesses_from_file_env_and_flags() {
    Jail::expect_with(|jail| {
        let (k1, k2, k3) = (witness_key("w1.example"), witness_key("w22.example"), witness_key("w333.example"));
        let (c, _) = load(None, &Flags::default())?;
        assert!(c.witness.0.is_empty() && c.witness_quorum.is_none(), "none by default");
        assert!(c.log_config().witnesses.is_empty());

        jail.create_file(
            "w.toml",
            &format!(
                "witness_quorum = 1\n[[witness]]\nurl = \"https://w1.example/\"\nkey = \"{k1}\"\n[[witness]]\nurl = \"http://127.0.0.1:9/w\"\nkey = \"{k2}\"\n"
            ),
        )?;
        let (c, f) = load(Some("w.toml"), &Flags::default())?;
        let urls: Vec<&str> = c.witness.0.iter().map(|w| w.url.as_str()).collect();
        assert_eq!(urls, ["https://w1.example", "http://127.0.0.1:9/w"]);
        assert_eq!(c.witness.0[1].key, k2);
        assert_eq!(c.witness_quorum, Some(1));
        assert_eq!(source_of(&f, "witness"), "file w.toml");
        let s = c.server_settings();
        assert_eq!((s.witnesses.len(), s.witness_quorum), (2, Some(1)));
        assert_eq!(c.log_config().witnesses, c.witness.0);
        // What `logbook config` prints is itself a configuration that reads back the same.
        jail.create_file("rendered.toml", &c.render(&f))?;
        let (again, _) = load(Some("rendered.toml"), &Flags::default())?;
        assert_eq!(again.witness, c.witness);

        // The environment replaces the file's list: one variable, items separated by spaces.
        jail.set_env("LOGBOOK_WITNESSES", format!("https://w3.example={k3}  https://w1.example={k1}"));
        let (c, f) = load(Some("w.toml"), &Flags::default())?;
        let names: Vec<&str> = c.witness.0.iter().map(|w| w.url.as_str()).collect();
        assert_eq!(names, ["https://w3.example", "https://w1.example"]);
        assert_eq!(source_of(&f, "witness"), "environment variable LOGBOOK_WITNESSES");

        // Flags replace both.
        let flags = Flags {
            witness: Some(vec![format!("https://w2.example={k2}")]),
            witness_quorum: Some(1),
            ..Flags::default()
        };
        let (c, f) = load(Some("w.toml"), &flags)?;
        assert_eq!(c.witness.0.len(), 1);
        assert_eq!(c.witness.0[0].url, "https://w2.example");
        assert_eq!(source_of(&f, "witness"), "flag --witness");
        Ok(())
    });
}

#[test]
fn bad_witnesses_and_quorums_are_clear_errors() {
    Jail::expect_with(|jail| {
        let k1 = witness_key("w1.example");
        for (value, says) in [
            ("https://w1.example".to_owned(), "URL=VERIFIER_KEY"),
            (format!("ftp://w1.example={k1}"), "http:// or https://"),
            (format!("w1.example={k1}"), "witness URL"),
            ("https://w1.example=w1.example+00000000+AAAA".to_owned(), "not a cosignature verifier key"),
        ] {
            jail.set_env("LOGBOOK_WITNESSES", &value);
            let e = load(None, &Flags::default()).unwrap_err();
            assert!(e.contains(says) && e.contains("LOGBOOK_WITNESSES"), "{value}: {e}");
        }
        // A checkpoint signing key is not a witness key.
        let log_key = logbook_integrity::checkpoint::CheckpointSigner::generate(
            &logbook_core::SeededRandom::new(1),
            "logbook.example",
        )
        .unwrap()
        .verifier_key()
        .to_owned();
        jail.set_env("LOGBOOK_WITNESSES", format!("https://w1.example={log_key}"));
        let e = load(None, &Flags::default()).unwrap_err();
        assert!(e.contains("not a cosignature verifier key"), "{e}");

        jail.set_env("LOGBOOK_WITNESSES", format!("https://w1.example={k1}"));
        jail.set_env("LOGBOOK_WITNESS_QUORUM", "2");
        let e = load(None, &Flags::default()).unwrap_err();
        assert!(e.contains("witness_quorum must be 1 to the number of witnesses (1), not 2"), "{e}");
        jail.set_env("LOGBOOK_WITNESS_QUORUM", "0");
        assert!(load(None, &Flags::default()).unwrap_err().contains("not 0"));
        jail.set_env("LOGBOOK_WITNESSES", "");
        jail.set_env("LOGBOOK_WITNESS_QUORUM", "1");
        let e = load(None, &Flags::default()).unwrap_err();
        assert!(e.contains("no witness is configured"), "{e}");
        Ok(())
    });
}
