"""Settings are pure: flags, environment and the conf file's text in, a Settings value out."""

from __future__ import annotations

import pytest

from service.settings import SettingsError, load_settings


def test_defaults_to_a_sqlite_file_and_the_loopback_port_30000() -> None:
    settings = load_settings([], {})

    assert settings.database_url == "sqlite:///./dtma.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 30000)
    assert settings.auth_token is None


def test_flags_beat_the_environment() -> None:
    environ = {"DTMA_PORT": "31000", "DTMA_HOST": "0.0.0.0"}

    settings = load_settings(["--port", "32000"], environ)

    assert settings.port == 32000
    assert settings.host == "0.0.0.0"


def test_no_flag_gives_the_auth_token_since_argv_shows_in_ps() -> None:
    environ = {"DTMA_AUTH_TOKEN": "from-env"}

    assert load_settings(["--auth-token", "from-flag"], environ).auth_token == "from-env"
    assert load_settings(["--auth-token", "from-flag"], {}).auth_token is None


def test_reads_the_tokens_file_and_the_outbound_allow_list() -> None:
    environ = {
        "DTMA_TOKENS_FILE": "/etc/dtma.tokens",
        "DTMA_OUTBOUND_ALLOW": " Auth.Local, 10.0.0.0/8,",
    }

    settings = load_settings([], environ)

    assert settings.tokens_file == "/etc/dtma.tokens"
    assert settings.outbound_allow == ("auth.local", "10.0.0.0/8")


def test_the_environment_beats_the_conf_file() -> None:
    settings = load_settings([], {"DTMA_AUTH_TOKEN": "from-env"}, "DTMA_AUTH_TOKEN=from-conf")

    assert settings.auth_token == "from-env"


def test_reads_the_token_from_backend_to_dtma_api_key() -> None:
    settings = load_settings([], {"BACKEND_TO_DTMA_API_KEY": "legacy-token"})

    assert settings.auth_token == "legacy-token"


def test_dtma_auth_token_beats_backend_to_dtma_api_key() -> None:
    environ = {"BACKEND_TO_DTMA_API_KEY": "legacy-token", "DTMA_AUTH_TOKEN": "new-token"}

    assert load_settings([], environ).auth_token == "new-token"


def test_reads_the_token_from_a_conf_line_ignoring_comments_and_quotes() -> None:
    conf = '# written by the installer\n\nOTHER=1\n  DTMA_AUTH_TOKEN = "conf-token"  \n'

    assert load_settings([], {}, conf).auth_token == "conf-token"


def test_an_empty_environment_variable_does_not_hide_the_conf_file() -> None:
    settings = load_settings([], {"DTMA_AUTH_TOKEN": ""}, "DTMA_AUTH_TOKEN=conf-token")

    assert settings.auth_token == "conf-token"


def test_reads_port_when_dtma_port_is_absent() -> None:
    assert load_settings([], {"PORT": "8080"}).port == 8080


def test_dtma_port_beats_port() -> None:
    assert load_settings([], {"PORT": "8080", "DTMA_PORT": "9090"}).port == 9090


def test_reads_the_backend_aliases() -> None:
    environ = {"AGENTOPIA_API_BASE_URL": "https://backend.example", "DTMA_BEARER_TOKEN": "b-tok"}

    settings = load_settings([], environ)

    assert settings.backend_url == "https://backend.example"
    assert settings.backend_token == "b-tok"


def test_the_dtma_backend_names_beat_their_aliases() -> None:
    environ = {
        "AGENTOPIA_API_BASE_URL": "https://old.example",
        "DTMA_BACKEND_URL": "https://new.example",
        "DTMA_BEARER_TOKEN": "old-token",
        "DTMA_BACKEND_TOKEN": "new-token",
    }

    settings = load_settings([], environ)

    assert (settings.backend_url, settings.backend_token) == ("https://new.example", "new-token")


def test_the_conf_file_gives_only_the_auth_token() -> None:
    conf = "DTMA_AUTH_TOKEN=t\nDTMA_PORT=4444\nDTMA_DATABASE_URL=postgresql://h/db\n"

    settings = load_settings([], {}, conf)

    assert settings.port == 30000
    assert settings.database_url == "sqlite:///./dtma.db"


def test_turns_a_bare_path_into_a_sqlite_url() -> None:
    settings = load_settings([], {"DTMA_DATABASE_URL": "/var/lib/dtma/log.db"})

    assert settings.database_url == "sqlite:////var/lib/dtma/log.db"


def test_keeps_postgresql_and_sqlite_urls() -> None:
    postgres = "postgresql://dtma:pw@db.example:5432/dtma"

    assert load_settings([], {"DTMA_DATABASE_URL": postgres}).database_url == postgres
    assert load_settings(["--database-url", "sqlite:///x.db"], {}).database_url == "sqlite:///x.db"


@pytest.mark.parametrize("port", ["http", "0", "-1", "3.5", ""])
def test_rejects_a_port_that_is_not_a_positive_integer(port: str) -> None:
    with pytest.raises(SettingsError, match="port"):
        load_settings(["--port", port], {})


def test_rejects_a_bad_port_from_the_environment() -> None:
    with pytest.raises(SettingsError, match="port"):
        load_settings([], {"DTMA_PORT": "thirty"})


@pytest.mark.parametrize("url", ["mysql://u:p@h/db", "mongodb://h/db"])
def test_rejects_an_unsupported_database_scheme(url: str) -> None:
    with pytest.raises(SettingsError, match="DTMA_DATABASE_URL"):
        load_settings([], {"DTMA_DATABASE_URL": url})


def test_rejects_a_malformed_database_url_without_echoing_it() -> None:
    url = "::not a url://s3cr3t"

    with pytest.raises(SettingsError, match="DTMA_DATABASE_URL") as raised:
        load_settings([], {"DTMA_DATABASE_URL": url})

    assert "s3cr3t" not in str(raised.value)


def test_ignores_arguments_that_are_not_settings() -> None:
    settings = load_settings(["replay", "--until", "5", "--port", "4000"], {})

    assert settings.port == 4000


def test_the_heartbeat_interval_defaults_to_a_minute() -> None:
    assert load_settings([], {}).heartbeat_interval_s == 60.0


def test_reads_the_heartbeat_interval_in_seconds_from_the_environment_or_a_flag() -> None:
    environ = {"DTMA_HEARTBEAT_INTERVAL": "2.5"}

    assert load_settings([], environ).heartbeat_interval_s == 2.5
    assert load_settings(["--heartbeat-interval-s", "30"], environ).heartbeat_interval_s == 30.0


@pytest.mark.parametrize("interval", ["0", "-5", "soon", ""])
def test_rejects_a_heartbeat_interval_that_is_not_a_positive_number(interval: str) -> None:
    with pytest.raises(SettingsError, match="heartbeat_interval_s"):
        load_settings(["--heartbeat-interval-s", interval], {})


def test_the_log_format_is_json_by_default_text_on_request_and_nothing_else() -> None:
    assert load_settings([], {}).log_format == "json"
    assert load_settings([], {"DTMA_LOG_FORMAT": "text"}).log_format == "text"
    with pytest.raises(SettingsError, match="log_format"):
        load_settings([], {"DTMA_LOG_FORMAT": "xml"})


def test_signs_a_checkpoint_every_thousand_events_by_default() -> None:
    assert load_settings([], {}).checkpoint_every == 1000


def test_reads_the_checkpoint_interval_from_the_environment_or_a_flag() -> None:
    environ = {"DTMA_CHECKPOINT_EVERY": "250"}

    assert load_settings([], environ).checkpoint_every == 250
    assert load_settings(["--checkpoint-every", "10"], environ).checkpoint_every == 10


@pytest.mark.parametrize("every", ["0", "-1", "1.5", "often"])
def test_rejects_a_checkpoint_interval_that_is_not_a_positive_integer(every: str) -> None:
    with pytest.raises(SettingsError, match="checkpoint_every"):
        load_settings([], {"DTMA_CHECKPOINT_EVERY": every})


def test_no_environment_is_selected_unless_dtma_environment_or_the_flag_names_one() -> None:
    assert load_settings([], {}).environment is None
    assert load_settings([], {"DTMA_ENVIRONMENT": "production"}).environment == "production"
    flagged = load_settings(["--environment", "staging"], {"DTMA_ENVIRONMENT": "production"})
    assert flagged.environment == "staging"


@pytest.mark.parametrize("name", ["-prod", "prod env", "a/b", "x" * 64])
def test_rejects_an_environment_name_no_config_template_could_use(name: str) -> None:
    with pytest.raises(SettingsError, match="environment"):
        load_settings([], {"DTMA_ENVIRONMENT": name})


def test_the_access_log_is_off_by_default_and_takes_a_yes_or_no() -> None:
    assert load_settings([], {}).access_log is False
    assert load_settings([], {"DTMA_ACCESS_LOG": "true"}).access_log is True
    assert load_settings(["--access-log", "0"], {"DTMA_ACCESS_LOG": "1"}).access_log is False
    with pytest.raises(SettingsError, match="access_log must be true or false"):
        load_settings([], {"DTMA_ACCESS_LOG": "maybe"})


def test_the_json_limits_come_from_the_environment_with_defaults_that_protect_the_log() -> None:
    defaults = load_settings([], {})
    assert (defaults.max_json_depth, defaults.max_json_string, defaults.max_json_array) == (
        32,
        262_144,
        10_000,
    )
    assert defaults.max_body_bytes == 1024 * 1024
    environ = {
        "DTMA_MAX_JSON_DEPTH": "64",
        "DTMA_MAX_JSON_STRING": "100",
        "DTMA_MAX_JSON_ARRAY": "5",
        "DTMA_MAX_BODY_BYTES": "2048",
    }
    settings = load_settings([], environ)
    assert (settings.max_json_depth, settings.max_json_string, settings.max_json_array) == (
        64,
        100,
        5,
    )
    assert settings.max_body_bytes == 2048


@pytest.mark.parametrize("depth", ["129", "1000", "0", "deep"])
def test_refuses_a_json_depth_the_log_could_not_read_back_or_that_is_not_positive(
    depth: str,
) -> None:
    with pytest.raises(SettingsError, match="max_json_depth"):
        load_settings([], {"DTMA_MAX_JSON_DEPTH": depth})


def test_container_safety_settings_come_from_the_environment() -> None:
    settings = load_settings(
        [],
        {
            "DTMA_ALLOWED_CAPABILITIES": "net_admin, CAP_AUDIT_WRITE",
            "DTMA_DEFAULT_MEMORY_MB": "256",
            "DTMA_DEFAULT_CPUS": "0.5",
            "DTMA_MAX_CONTAINERS": "40",
        },
    )
    policy = settings.policy()

    assert policy.refused_capabilities(["NET_ADMIN", "AUDIT_WRITE", "CHOWN", "MKNOD"]) == ["MKNOD"]
    assert (policy.default_memory_mb, policy.default_cpus, policy.max_containers) == (256, 0.5, 40)


@pytest.mark.parametrize("names", ["ALL", "SYS_ADMIN", "CHOWN,cap_sys_module", "NOT A NAME"])
def test_no_setting_allows_all_or_sys_capabilities(names: str) -> None:
    with pytest.raises(SettingsError, match="allowed_capabilities"):
        load_settings([], {"DTMA_ALLOWED_CAPABILITIES": names})


def test_a_default_memory_limit_docker_would_refuse_is_refused() -> None:
    with pytest.raises(SettingsError, match="default_memory_mb"):
        load_settings([], {"DTMA_DEFAULT_MEMORY_MB": "5"})


def test_the_reach_is_detected_by_default_and_a_flag_beats_dtma_reach() -> None:
    assert load_settings([], {}).reach == "auto"
    assert load_settings([], {"DTMA_REACH": "network"}).reach == "network"
    assert load_settings(["--reach", "host"], {"DTMA_REACH": "network"}).reach == "host"
    with pytest.raises(SettingsError, match="reach must be auto, network or host"):
        load_settings([], {"DTMA_REACH": "bridge"})
